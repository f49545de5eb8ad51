//! An authorization policy of 10 rules with mixed leaves (peer SANs, JWT claims, CIDRs,
//! methods, path prefixes and regexes, headers, consumer metadata) where only the last
//! rule matches, so every rule is evaluated. The issue's budget: at most 300 ns.
//!
//! Run: `cargo bench --bench authz -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::auth::policy::{AuthzInput, Policy};
use ringway::config::auth::Consumer;
use ringway::config::Config;
use ringway::tls::identity::PeerIdentity;
use serde_json::{json, Value};

const CONFIG: &str = r#"
listeners:
  - name: a
    address: 127.0.0.1:1
    routes: [{ match: { prefix: / }, direct_response: { status: 200 } }]
    authorization:
      default: deny
      rules:
        - name: evil
          deny: { peer: { uri: "spiffe://cluster.local/ns/evil/sa/default" } }
        - name: private-nets
          deny: { source: [10.0.0.0/8, 172.16.0.0/12] }
        - name: admins
          allow: { claim: { name: groups, any_of: [admins, sre] } }
        - name: admin-deletes
          allow: { method: DELETE, path: { prefix: /admin/ } }
        - name: debug
          allow: { header: { name: x-debug, exact: "1" } }
        - name: writers
          allow: { claim: { name: scope, has: orders:write } }
        - name: internal-hosts
          allow: { peer: { dns: { suffix: .internal.example.com } } }
        - name: secrets
          deny: { path: { regex: "/api/v[0-9]+/secret.*" } }
        - name: gold
          allow: { consumer_metadata: { plan: gold } }
        - name: shop
          allow:
            peer: { uri: { prefix: "spiffe://cluster.local/ns/shop/" } }
            claim: { name: scope, has: orders:read }
            method: [GET, HEAD]
            path: { prefix: /api/ }
            source: 192.0.2.0/24
"#;

struct Input {
    method: &'static [u8],
    path: &'static [u8],
    headers: Vec<(&'static str, &'static [u8])>,
    remote: IpAddr,
    peer: PeerIdentity,
    claims: Value,
}

impl AuthzInput for Input {
    fn method(&self) -> &[u8] {
        self.method
    }
    fn path(&self) -> &[u8] {
        self.path
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
    fn remote_ip(&self) -> Option<IpAddr> {
        Some(self.remote)
    }
    fn direct_remote_ip(&self) -> Option<IpAddr> {
        Some(self.remote)
    }
    fn destination_ip(&self) -> Option<IpAddr> {
        None
    }
    fn destination_port(&self) -> Option<u16> {
        Some(443)
    }
    fn server_name(&self) -> Option<&[u8]> {
        Some(b"api.example.com")
    }
    fn peer(&self) -> Option<&PeerIdentity> {
        Some(&self.peer)
    }
    fn claim(&self, dotted_path: &str) -> Option<&Value> {
        dotted_path
            .split('.')
            .try_fold(&self.claims, |v, key| v.get(key))
    }
    fn jwt_payload(&self, _: &str) -> Option<&Value> {
        None
    }
    fn consumer(&self) -> Option<&Consumer> {
        None
    }
}

fn bench(c: &mut Criterion) {
    let config = Config::parse(CONFIG, Path::new("bench.yaml")).expect("config");
    let policy = Policy::compile(config.listeners[0].authorization.as_ref().expect("policy"));
    let input = Input {
        method: b"GET",
        path: b"/api/v1/orders/12345",
        headers: vec![
            ("host", b"api.example.com"),
            ("user-agent", b"bench/1.0"),
            ("accept", b"*/*"),
            ("authorization", b"Bearer eyJ..."),
        ],
        remote: "192.0.2.7".parse().unwrap(),
        peer: PeerIdentity {
            hash: String::new(),
            subject: "O=shop".into(),
            uris: vec!["spiffe://cluster.local/ns/shop/sa/frontend".into()],
            dns: vec!["frontend.shop.svc".into()],
            pem: Vec::new(),
        },
        claims: json!({
            "sub": "alice",
            "scope": "openid profile orders:read",
            "groups": ["dev", "shop"],
        }),
    };
    let decision = policy.evaluate(&input);
    assert!(decision.allowed);
    assert_eq!(decision.matched, Some("shop"));
    c.bench_function("authz/10_rules_last_decides", |b| {
        b.iter(|| black_box(policy.evaluate(black_box(&input))).allowed)
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
