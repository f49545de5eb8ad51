//! The engine on a request built in the test: every leaf, the combinators, rule order,
//! defaults, shadow rules, and Envoy's ALLOW/DENY/LOG semantics from a loaded config.

use std::net::IpAddr;
use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::config::authz::{
    AuthzPolicy, ClaimSource, ClaimTest, Condition, Decision as D, HeaderTest, HeaderValue,
    MatchKind, PeerField, RouteAuthz, Rule, Rules, SourceKind, StrMatch,
};
use crate::config::{Cidr, Config};

#[derive(Default)]
struct Req {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    remote: Option<IpAddr>,
    direct: Option<IpAddr>,
    destination: Option<IpAddr>,
    port: Option<u16>,
    sni: Option<&'static str>,
    peer: Option<PeerIdentity>,
    claims: Option<Value>,
    payloads: Vec<(&'static str, Value)>,
    consumer: Option<Consumer>,
}

impl AuthzInput for Req {
    fn method(&self) -> &[u8] {
        self.method.as_bytes()
    }
    fn path(&self) -> &[u8] {
        self.path.as_bytes()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        if name == ":method" {
            return Some(self.method.as_bytes());
        }
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes())
    }
    fn remote_ip(&self) -> Option<IpAddr> {
        self.remote
    }
    fn direct_remote_ip(&self) -> Option<IpAddr> {
        self.direct
    }
    fn destination_ip(&self) -> Option<IpAddr> {
        self.destination
    }
    fn destination_port(&self) -> Option<u16> {
        self.port
    }
    fn server_name(&self) -> Option<&[u8]> {
        self.sni.map(str::as_bytes)
    }
    fn peer(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref()
    }
    fn claim(&self, dotted_path: &str) -> Option<&Value> {
        dotted_path
            .split('.')
            .try_fold(self.claims.as_ref()?, |v, k| v.get(k))
    }
    fn jwt_payload(&self, metadata_key: &str) -> Option<&Value> {
        self.payloads
            .iter()
            .find(|(k, _)| *k == metadata_key)
            .map(|(_, v)| v)
    }
    fn consumer(&self) -> Option<&Consumer> {
        self.consumer.as_ref()
    }
}

fn req() -> Req {
    Req {
        method: "GET",
        path: "/api/orders",
        ..Req::default()
    }
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

fn cidr(text: &str) -> Cidr {
    let (addr, len) = text.split_once('/').unwrap();
    Cidr {
        network: addr.parse().unwrap(),
        prefix_len: len.parse().unwrap(),
    }
}

fn peer(uris: &[&str], dns: &[&str], subject: &str) -> PeerIdentity {
    PeerIdentity {
        hash: String::new(),
        subject: subject.into(),
        uris: uris.iter().map(|s| (*s).to_owned()).collect(),
        dns: dns.iter().map(|s| (*s).to_owned()).collect(),
        pem: Vec::new(),
    }
}

fn m(kind: MatchKind) -> StrMatch {
    StrMatch {
        kind,
        ignore_case: false,
    }
}

fn nocase(kind: MatchKind) -> StrMatch {
    StrMatch {
        kind,
        ignore_case: true,
    }
}

fn rules(rules: Vec<(&str, D, Condition)>, default: D) -> Rules {
    Rules {
        rules: rules
            .into_iter()
            .map(|(name, decision, when)| Rule {
                name: name.into(),
                decision,
                when,
            })
            .collect(),
        default,
        log_only: false,
    }
}

fn enforced(r: Rules) -> Policy {
    Policy::compile(&AuthzPolicy {
        enforced: Some(r),
        ..AuthzPolicy::default()
    })
}

/// Whether a policy of one allow rule on `c` (default deny) allows `r`.
fn holds(c: Condition, r: &Req) -> bool {
    enforced(rules(vec![("r", D::Allow, c)], D::Deny))
        .evaluate(r)
        .allowed
}

fn claim(name: &str, test: ClaimTest) -> Condition {
    Condition::Claim {
        source: ClaimSource::Jwt(name.into()),
        test,
    }
}

#[test]
fn policies_are_shared_by_workers() {
    fn shared<T: Send + Sync>() {}
    shared::<Policy>();
}

#[test]
fn peer_names() {
    let mut r = req();
    let spiffe = "spiffe://cluster.local/ns/ops/sa/admin";
    let uri = |matcher| Condition::Peer {
        field: PeerField::Uri,
        matcher,
    };
    assert!(!holds(uri(StrMatch::exact(spiffe)), &r), "no certificate");
    assert!(!holds(Condition::Authenticated, &r));
    r.peer = Some(peer(&[spiffe], &["API.example.com"], "CN=admin,O=ops"));
    assert!(holds(Condition::Authenticated, &r));
    assert!(holds(uri(StrMatch::exact(spiffe)), &r));
    assert!(holds(
        uri(m(MatchKind::Prefix(
            "spiffe://cluster.local/ns/ops/".into()
        ))),
        &r
    ));
    assert!(!holds(
        uri(m(MatchKind::Prefix(
            "spiffe://cluster.local/ns/web/".into()
        ))),
        &r
    ));
    // DNS names compare without case in native tests; URIs exactly.
    let dns = |field, text: &str| Condition::Peer {
        field,
        matcher: StrMatch::exact(text),
    };
    assert!(holds(dns(PeerField::Dns, "api.example.com"), &r));
    assert!(holds(dns(PeerField::UriOrDns, "api.example.com"), &r));
    assert!(holds(dns(PeerField::UriOrDns, spiffe), &r));
    assert!(!holds(
        dns(
            PeerField::UriOrDns,
            "SPIFFE://cluster.local/ns/ops/sa/admin"
        ),
        &r
    ));
    assert!(!holds(dns(PeerField::Dns, spiffe), &r));
    assert!(holds(dns(PeerField::Subject, "CN=admin,O=ops"), &r));
    // Envoy's principal_name: URI SANs, then DNS SANs (as configured), then the subject.
    let principal = |text: &str| Condition::Peer {
        field: PeerField::Principal,
        matcher: StrMatch::exact(text),
    };
    assert!(holds(principal(spiffe), &r));
    assert!(holds(principal("API.example.com"), &r));
    assert!(!holds(principal("api.example.com"), &r));
    assert!(holds(principal("CN=admin,O=ops"), &r));
    assert!(!holds(principal("CN=other"), &r));
}

#[test]
fn claim_tests() {
    let mut r = req();
    let sub = || claim("sub", ClaimTest::Text(StrMatch::exact("alice")));
    assert!(!holds(sub(), &r), "no token");
    r.claims = Some(json!({
        "sub": "alice",
        "scope": "orders:read orders:write  profile",
        "scp": ["orders:read", "admin"],
        "groups": ["dev", "ops"],
        "level": 42,
        "ratio": 1.5,
        "admin": true,
        "realm_access": {"roles": ["auditor"]},
        "nothing": null,
    }));
    assert!(holds(sub(), &r));
    assert!(!holds(
        claim("sub", ClaimTest::Text(StrMatch::exact("Alice"))),
        &r
    ));
    assert!(holds(
        claim(
            "sub",
            ClaimTest::Text(nocase(MatchKind::Exact("ALICE".into())))
        ),
        &r
    ));
    assert!(holds(
        claim("sub", ClaimTest::Text(m(MatchKind::Regex("a.*e".into())))),
        &r
    ));
    // Arrays: any element.
    assert!(holds(
        claim("groups", ClaimTest::Text(StrMatch::exact("ops"))),
        &r
    ));
    let any_of = |values: &[&str]| {
        claim(
            "groups",
            ClaimTest::AnyOf(values.iter().map(|v| (*v).to_owned()).collect()),
        )
    };
    assert!(holds(any_of(&["admins", "ops"]), &r));
    assert!(!holds(any_of(&["admins", "root"]), &r));
    assert!(holds(
        claim(
            "realm_access.roles",
            ClaimTest::Text(StrMatch::exact("auditor"))
        ),
        &r
    ));
    // Numbers and booleans by their text.
    assert!(holds(
        claim("level", ClaimTest::Text(StrMatch::exact("42"))),
        &r
    ));
    assert!(!holds(
        claim("level", ClaimTest::Text(StrMatch::exact("43"))),
        &r
    ));
    assert!(holds(
        claim("ratio", ClaimTest::Text(StrMatch::exact("1.5"))),
        &r
    ));
    assert!(holds(
        claim("admin", ClaimTest::Text(StrMatch::exact("true"))),
        &r
    ));
    assert!(!holds(
        claim("level", ClaimTest::Text(m(MatchKind::Prefix("4".into())))),
        &r
    ));
    // Scopes: a space-separated string or an array, containing all.
    let scopes = |name: &str, want: &[&str]| {
        claim(
            name,
            ClaimTest::Scopes(want.iter().map(|v| (*v).to_owned()).collect()),
        )
    };
    assert!(holds(scopes("scope", &["orders:read"]), &r));
    assert!(holds(scopes("scope", &["profile", "orders:write"]), &r));
    assert!(!holds(scopes("scope", &["orders:read", "admin"]), &r));
    assert!(!holds(scopes("scope", &["orders"]), &r), "whole words only");
    assert!(holds(scopes("scp", &["admin", "orders:read"]), &r));
    assert!(!holds(scopes("sub", &["alice", "bob"]), &r));
    // Presence.
    assert!(holds(claim("nothing", ClaimTest::Present), &r));
    assert!(!holds(claim("missing", ClaimTest::Present), &r));
    assert!(!holds(
        claim("realm_access.missing", ClaimTest::Present),
        &r
    ));
    // Envoy's value matchers: strict types.
    assert!(!holds(
        claim("groups", ClaimTest::String(StrMatch::exact("ops"))),
        &r
    ));
    assert!(holds(
        claim(
            "groups",
            ClaimTest::List(Box::new(ClaimTest::String(StrMatch::exact("ops"))))
        ),
        &r
    ));
    assert!(!holds(
        claim("level", ClaimTest::String(StrMatch::exact("42"))),
        &r
    ));
    assert!(holds(claim("level", ClaimTest::Number(42.0)), &r));
    assert!(holds(
        claim(
            "ratio",
            ClaimTest::NumberRange {
                start: 1.0,
                end: 2.0
            }
        ),
        &r
    ));
    assert!(!holds(
        claim(
            "level",
            ClaimTest::NumberRange {
                start: 1.0,
                end: 42.0
            }
        ),
        &r
    ));
    assert!(holds(claim("admin", ClaimTest::Bool(true)), &r));
    assert!(!holds(claim("admin", ClaimTest::Bool(false)), &r));
    assert!(holds(claim("nothing", ClaimTest::Null), &r));
    assert!(!holds(claim("sub", ClaimTest::Null), &r));
    assert!(holds(
        claim(
            "sub",
            ClaimTest::Or(vec![ClaimTest::Bool(true), ClaimTest::Present])
        ),
        &r
    ));
    assert!(!holds(claim("sub", ClaimTest::Or(Vec::new())), &r));
}

#[test]
fn jwt_payload_metadata() {
    let mut r = req();
    let test = |path: &[&str], test| Condition::Claim {
        source: ClaimSource::Payload {
            key: "my_payload".into(),
            path: path.iter().map(|p| (*p).to_owned()).collect(),
        },
        test,
    };
    assert!(!holds(test(&[], ClaimTest::Present), &r));
    r.payloads = vec![(
        "my_payload",
        json!({"iss": "https://issuer", "a": {"b.c": "x"}}),
    )];
    assert!(holds(test(&[], ClaimTest::Present), &r));
    assert!(holds(
        test(
            &["iss"],
            ClaimTest::String(StrMatch::exact("https://issuer"))
        ),
        &r
    ));
    // Path segments are keys, not dotted paths.
    assert!(holds(
        test(&["a", "b.c"], ClaimTest::String(StrMatch::exact("x"))),
        &r
    ));
    assert!(!holds(test(&["a", "b"], ClaimTest::Present), &r));
}

#[test]
fn consumers() {
    let mut r = req();
    let names = Condition::Consumer(vec!["acme".into(), "globex".into()]);
    let gold = Condition::ConsumerMetadata(vec![("plan".into(), "gold".into())]);
    assert!(!holds(names.clone(), &r));
    assert!(!holds(gold.clone(), &r));
    r.consumer = Some(Consumer {
        name: "acme".into(),
        key_digests: Vec::new(),
        metadata: vec![("plan".into(), "gold".into()), ("tier".into(), "1".into())],
    });
    assert!(holds(names, &r));
    assert!(holds(gold, &r));
    assert!(holds(
        Condition::ConsumerMetadata(vec![
            ("tier".into(), "1".into()),
            ("plan".into(), "gold".into())
        ]),
        &r
    ));
    assert!(!holds(
        Condition::ConsumerMetadata(vec![
            ("plan".into(), "gold".into()),
            ("tier".into(), "2".into())
        ]),
        &r
    ));
    assert!(!holds(Condition::Consumer(vec!["initech".into()]), &r));
}

#[test]
fn addresses_ports_and_names() {
    let mut r = req();
    let source = |kind| Condition::Source {
        kind,
        cidrs: vec![cidr("10.0.0.0/8"), cidr("fd00::/8")],
    };
    assert!(!holds(source(SourceKind::Remote), &r));
    r.remote = ip("10.1.2.3");
    r.direct = ip("192.0.2.1");
    assert!(holds(source(SourceKind::Remote), &r));
    assert!(!holds(source(SourceKind::Direct), &r));
    r.direct = ip("::ffff:10.0.0.1");
    assert!(holds(source(SourceKind::Direct), &r), "IPv4-mapped");
    r.remote = ip("fd00::1");
    assert!(holds(source(SourceKind::Remote), &r));
    let dest = Condition::DestinationIp(vec![cidr("127.0.0.0/8")]);
    assert!(!holds(dest.clone(), &r));
    r.destination = ip("127.0.0.1");
    assert!(holds(dest, &r));
    let port = |start, end| Condition::DestinationPort { start, end };
    assert!(!holds(port(443, 444), &r));
    r.port = Some(443);
    assert!(holds(port(443, 444), &r));
    assert!(holds(port(0, 65536), &r));
    assert!(!holds(port(444, 1000), &r));
    let sni = Condition::ServerName(m(MatchKind::Suffix(".example.com".into())));
    assert!(!holds(sni.clone(), &r));
    r.sni = Some("api.example.com");
    assert!(holds(sni, &r));
}

#[test]
fn methods_and_paths() {
    let r = req();
    assert!(holds(
        Condition::Method(vec!["POST".into(), "GET".into()]),
        &r
    ));
    assert!(!holds(Condition::Method(vec!["get".into()]), &r));
    let path = |s: StrMatch| Condition::Path(s);
    assert!(holds(path(StrMatch::exact("/api/orders")), &r));
    assert!(!holds(path(StrMatch::exact("/api/order")), &r));
    assert!(holds(path(m(MatchKind::Prefix("/api/".into()))), &r));
    assert!(holds(path(m(MatchKind::Suffix("/orders".into()))), &r));
    assert!(holds(path(m(MatchKind::Contains("i/or".into()))), &r));
    assert!(!holds(path(m(MatchKind::Contains("/API".into()))), &r));
    assert!(holds(path(nocase(MatchKind::Contains("/API".into()))), &r));
    assert!(holds(path(nocase(MatchKind::Prefix("/API/".into()))), &r));
    assert!(holds(path(nocase(MatchKind::Suffix("ORDERS".into()))), &r));
    assert!(!holds(
        path(nocase(MatchKind::Suffix("/api/orders/x".into()))),
        &r
    ));
    assert!(holds(path(m(MatchKind::Regex("/api/[a-z]+".into()))), &r));
    assert!(
        !holds(path(m(MatchKind::Regex("/api".into()))), &r),
        "anchored"
    );
}

#[test]
fn headers_follow_envoys_rules() {
    let mut r = req();
    r.headers = vec![("x-debug", "1"), ("x-empty", "")];
    let h = |name: &str, value, invert, missing| {
        Condition::Header(HeaderTest {
            name: name.into(),
            value,
            invert,
            treat_missing_as_empty: missing,
        })
    };
    let exact = |t: &str| HeaderValue::Matches(StrMatch::exact(t));
    assert!(holds(h("x-debug", exact("1"), false, false), &r));
    assert!(!holds(h("x-debug", exact("2"), false, false), &r));
    assert!(holds(h("x-debug", exact("2"), true, false), &r));
    assert!(holds(h(":method", exact("GET"), false, false), &r));
    // An absent header fails a value test, inverted or not...
    assert!(!holds(h("x-missing", exact("1"), false, false), &r));
    assert!(!holds(h("x-missing", exact("1"), true, false), &r));
    // ...unless it counts as empty.
    assert!(holds(h("x-missing", exact(""), false, true), &r));
    assert!(holds(h("x-missing", exact("1"), true, true), &r));
    // Presence.
    let present = HeaderValue::Present;
    assert!(holds(h("x-empty", present(true), false, false), &r));
    assert!(!holds(h("x-missing", present(true), false, false), &r));
    assert!(holds(h("x-missing", present(false), false, false), &r));
    assert!(!holds(h("x-debug", present(false), false, false), &r));
    assert!(holds(h("x-missing", present(true), true, false), &r));
    assert!(!holds(h("x-debug", present(true), true, false), &r));
    assert!(!holds(h("x-missing", present(false), true, false), &r));
    let prefix = HeaderValue::Matches(nocase(MatchKind::Prefix("1".into())));
    assert!(holds(h("x-debug", prefix, false, false), &r));
}

#[test]
fn combinators() {
    let r = req();
    let yes = || Condition::Always;
    let no = || Condition::Method(vec!["DELETE".into()]);
    assert!(holds(Condition::Any(vec![no(), yes()]), &r));
    assert!(!holds(Condition::Any(vec![no(), no()]), &r));
    assert!(!holds(Condition::Any(Vec::new()), &r));
    assert!(holds(Condition::All(vec![yes(), yes()]), &r));
    assert!(!holds(Condition::All(vec![yes(), no()]), &r));
    assert!(holds(Condition::All(Vec::new()), &r));
    assert!(holds(Condition::Not(Box::new(no())), &r));
    assert!(!holds(Condition::Not(Box::new(yes())), &r));
}

#[test]
fn first_match_decides_else_the_default() {
    let get = || Condition::Method(vec!["GET".into()]);
    let api = || Condition::Path(m(MatchKind::Prefix("/api".into())));
    let policy = enforced(rules(
        vec![
            ("deny-post", D::Deny, Condition::Method(vec!["POST".into()])),
            ("allow-get", D::Allow, get()),
            ("deny-api", D::Deny, api()),
        ],
        D::Deny,
    ));
    let d = policy.evaluate(&req());
    assert_eq!(
        d,
        Decision {
            allowed: true,
            matched: Some("allow-get"),
            shadow: None
        }
    );
    let post = Req {
        method: "POST",
        ..req()
    };
    assert_eq!(policy.evaluate(&post).matched, Some("deny-post"));
    assert!(!policy.evaluate(&post).allowed);
    let put = Req {
        method: "PUT",
        path: "/other",
        ..req()
    };
    assert_eq!(
        (policy.evaluate(&put).allowed, policy.evaluate(&put).matched),
        (false, None)
    );
    let open = enforced(rules(vec![("deny-api", D::Deny, api())], D::Allow));
    assert!(open.evaluate(&put).allowed);
    assert!(!open.evaluate(&req()).allowed);
    assert_eq!(
        open.rule_names().collect::<Vec<_>>(),
        ["deny-api"],
        "names for stats"
    );
    // No enforced rules: allowed.
    let none = Policy::compile(&AuthzPolicy::default());
    assert!(none.evaluate(&put).allowed);
}

#[test]
fn shadow_rules_are_reported_not_enforced() {
    let policy = Policy::compile(&AuthzPolicy {
        enforced: None,
        shadow: Some(rules(
            vec![("gets", D::Allow, Condition::Method(vec!["GET".into()]))],
            D::Deny,
        )),
        ..AuthzPolicy::default()
    });
    assert!(policy.has_shadow());
    let put = Req {
        method: "PUT",
        ..req()
    };
    assert_eq!(
        policy.evaluate(&put),
        Decision {
            allowed: true,
            matched: None,
            shadow: Some((false, None))
        }
    );
    assert_eq!(policy.evaluate(&req()).shadow, Some((true, Some("gets"))));
}

// Both formats, loaded and evaluated.

fn listener_policy(text: &str) -> Policy {
    let config = match Config::parse(text, Path::new("t.yaml")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let l = &config.listeners[0];
    let policy = l.authorization.as_ref().or_else(|| {
        match l
            .virtual_hosts
            .first()?
            .routes
            .first()?
            .authorization
            .as_ref()?
        {
            RouteAuthz::Policy(p) => Some(p),
            RouteAuthz::Disabled => None,
        }
    });
    Policy::compile(policy.expect("a policy"))
}

#[test]
fn a_native_policy_evaluates() {
    let text = r#"
listeners:
  - name: a
    address: 127.0.0.1:1
    routes: [{ match: { prefix: / }, direct_response: { status: 200 } }]
    authorization:
      rules:
        - name: admins
          allow: { peer: { uri: { prefix: "spiffe://cluster.local/ns/ops/" } }, method: [GET, POST] }
        - name: internal
          deny: { source: [10.0.0.0/8] }
        - name: readers
          allow: { claim: { name: scope, has: orders:read } }
        - allow: { all: [ { consumer: acme }, { consumer_metadata: { plan: gold } } ] }
        - allow: { not: { path: { prefix: /admin } }, header: { name: x-debug, exact: "1" } }
"#;
    let policy = listener_policy(text);
    let mut r = req();
    assert_eq!(policy.evaluate(&r).matched, None);
    assert!(!policy.evaluate(&r).allowed);
    r.peer = Some(peer(&["spiffe://cluster.local/ns/ops/sa/admin"], &[], ""));
    assert_eq!(policy.evaluate(&r).matched, Some("admins"));
    r.peer = None;
    r.remote = ip("10.0.0.1");
    r.claims = Some(json!({"scope": "orders:read"}));
    assert_eq!(policy.evaluate(&r).matched, Some("internal"));
    r.remote = ip("192.0.2.1");
    assert_eq!(policy.evaluate(&r).matched, Some("readers"));
    r.claims = None;
    r.consumer = Some(Consumer {
        name: "acme".into(),
        key_digests: Vec::new(),
        metadata: vec![("plan".into(), "gold".into())],
    });
    assert_eq!(policy.evaluate(&r).matched, Some("rules[3]"));
    r.consumer = None;
    r.headers = vec![("x-debug", "1")];
    assert_eq!(policy.evaluate(&r).matched, Some("rules[4]"));
    r.path = "/admin/users";
    assert!(!policy.evaluate(&r).allowed);
}

fn envoy(rbac: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: local
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200 }}
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
{rbac}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

const POLICIES: &str = r#"                policies:
                  "b-admins":
                    permissions: [ { header: { name: ":method", string_match: { exact: GET } } } ]
                    principals: [ { authenticated: { principal_name: { exact: "spiffe://td/admin" } } } ]
                  "a-internal":
                    permissions: [ { url_path: { path: { prefix: /internal } } } ]
                    principals: [ { remote_ip: { address_prefix: 10.0.0.0, prefix_len: 8 } } ]
"#;

#[test]
fn envoy_allow_deny_and_log_actions() {
    let admin = || Req {
        peer: Some(peer(&["spiffe://td/admin"], &[], "")),
        ..req()
    };
    let internal = || Req {
        path: "/internal/x",
        remote: ip("10.1.1.1"),
        ..req()
    };
    // ALLOW: a matching policy allows; nothing else is.
    let allow = listener_policy(&envoy(&format!(
        "              rules:\n                action: ALLOW\n{POLICIES}"
    )));
    assert_eq!(
        allow.evaluate(&admin()),
        Decision {
            allowed: true,
            matched: Some("b-admins"),
            shadow: None
        }
    );
    assert!(!allow.evaluate(&req()).allowed);
    let both = Req {
        peer: Some(peer(&["spiffe://td/admin"], &[], "")),
        ..internal()
    };
    // Envoy evaluates policies in name order.
    assert_eq!(allow.evaluate(&both).matched, Some("a-internal"));
    // DENY: a matching policy denies; everything else is allowed.
    let deny = listener_policy(&envoy(&format!(
        "              rules:\n                action: DENY\n{POLICIES}"
    )));
    assert!(!deny.evaluate(&internal()).allowed);
    assert_eq!(deny.evaluate(&internal()).matched, Some("a-internal"));
    assert!(deny.evaluate(&req()).allowed);
    // LOG: never denies; a match is noted.
    let log = listener_policy(&envoy(&format!(
        "              rules:\n                action: LOG\n{POLICIES}"
    )));
    assert!(log.log_only());
    assert_eq!(
        (
            log.evaluate(&admin()).allowed,
            log.evaluate(&admin()).matched
        ),
        (true, Some("b-admins"))
    );
    assert_eq!(
        (log.evaluate(&req()).allowed, log.evaluate(&req()).matched),
        (true, None)
    );
    // Shadow rules beside enforced ones.
    let shadow = listener_policy(&envoy(&format!(
        "              rules: {{ action: DENY }}\n              shadow_rules_stat_prefix: rollout_\n              shadow_rules:\n                action: ALLOW\n{POLICIES}"
    )));
    assert_eq!(shadow.shadow_stat_prefix(), "rollout_");
    assert_eq!(
        shadow.evaluate(&req()),
        Decision {
            allowed: true,
            matched: None,
            shadow: Some((false, None))
        }
    );
    assert_eq!(
        shadow.evaluate(&admin()).shadow,
        Some((true, Some("b-admins")))
    );
}

/// Only the leaf kinds Envoy has are built by the Envoy decoder; this checks a JWT
/// claim matcher loaded from an Envoy config reaches the payload.
#[test]
fn envoy_metadata_matchers_read_jwt_payloads() {
    let policy = listener_policy(&envoy(
        r#"              rules:
                policies:
                  readers:
                    permissions: [ { any: true } ]
                    principals:
                    - metadata:
                        filter: envoy.filters.http.jwt_authn
                        path: [ { key: my_payload }, { key: scope } ]
                        value: { string_match: { exact: read } }
                    - metadata:
                        filter: envoy.filters.http.jwt_authn
                        path: [ { key: my_payload }, { key: groups } ]
                        value: { list_match: { one_of: { string_match: { prefix: adm } } } }
"#,
    ));
    let mut r = req();
    assert!(!policy.evaluate(&r).allowed);
    r.payloads = vec![("my_payload", json!({"scope": "read"}))];
    assert!(policy.evaluate(&r).allowed);
    r.payloads = vec![("my_payload", json!({"groups": ["dev", "admins"]}))];
    assert!(policy.evaluate(&r).allowed);
    r.payloads = vec![("my_payload", json!({"groups": "admins"}))];
    assert!(!policy.evaluate(&r).allowed, "not a list");
}

#[test]
fn scopes_are_whole_space_separated_words() {
    let finder = |w: &str| memchr::memmem::Finder::new(w.as_bytes()).into_owned();
    let word = |text: &str, w: &str| super::has_word(text.as_bytes(), w.len(), &finder(w));
    assert!(word("orders:read", "orders:read"));
    assert!(word("a orders:read", "orders:read"));
    assert!(word("orders:read b", "orders:read"));
    assert!(word("a orders:read b", "orders:read"));
    assert!(word("orders:readx orders:read", "orders:read"));
    assert!(!word("orders:readx", "orders:read"));
    assert!(!word("xorders:read", "orders:read"));
    assert!(!word("a xorders:read b orders:readx", "orders:read"));
    assert!(!word("", "orders:read"));
}
