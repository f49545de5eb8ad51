//! `authorization` on a listener or a route: an ordered list of allow/deny rules over
//! conditions (see `config::authz` for the model and its semantics).
//!
//! ```yaml
//! authorization:
//!   default: deny        # allow | deny (deny when absent)
//!   shadow: false        # true: decided and counted, never enforced
//!   rules:
//!     - name: admins     # optional (else `rules[i]`): logs and stats
//!       allow: { peer: "spiffe://cluster.local/ns/ops/sa/admin", method: [GET, POST] }
//!     - deny: { source: [10.0.0.0/8] }
//!     - allow: { claim: { name: scope, has: [orders:read] } }
//! ```
//!
//! A condition is a mapping; several keys in one mapping must all hold. Combinators:
//! `any: [..]` (or `any: true`, always), `all: [..]`, `not: {..}`. Leaves: `peer` (a
//! URI or DNS SAN: a string, a list, or `{uri|dns|subject|san: <match>}`),
//! `authenticated: true|false` (a verified client certificate), `claim: {name, exact |
//! prefix | suffix | contains | regex | any_of | has | present, ignore_case}`,
//! `consumer` (a name or a list), `consumer_metadata: {key: value, ..}`, `source` (CIDRs
//! of the client after `trusted_proxies`), `direct_source` (CIDRs of the TCP peer),
//! `destination_ip`, `port` (a port or a list), `method` (a method or a list), `path` (a
//! string: exact, or a `<match>`), `header: {name, <match> | present, invert}`,
//! `server_name` (SNI: a string or a `<match>`). A `<match>` is a string (exact) or
//! `{exact|prefix|suffix|contains|regex: text, ignore_case: bool}`.
//!
//! On a route, `authorization: none` turns the listener's policy off.

use super::authz::{
    AuthzPolicy, ClaimSource, ClaimTest, Condition, Decision, HeaderTest, HeaderValue, MatchKind,
    PeerField, RouteAuthz, Rule, Rules, SourceKind, StrMatch,
};
use super::error::Diagnostics;
use super::fields::{
    choice, exactly_one, given, has_unknown_keys, non_empty_list, optional_bool, token_byte,
};
use super::model::Cidr;
use super::node::{Map, Node};
use super::pattern::anchored_regex;

const POLICY_KEYS: &[&str] = &["default", "shadow", "rules"];
const RULE_KEYS: &[&str] = &["name", "allow", "deny"];
const CONDITION_KEYS: &[&str] = &[
    "any",
    "all",
    "not",
    "peer",
    "authenticated",
    "claim",
    "consumer",
    "consumer_metadata",
    "source",
    "direct_source",
    "destination_ip",
    "port",
    "method",
    "path",
    "header",
    "server_name",
];
const MATCH_KEYS: &[&str] = &[
    "exact",
    "prefix",
    "suffix",
    "contains",
    "regex",
    "ignore_case",
];
const PEER_KEYS: &[&str] = &["uri", "dns", "san", "subject"];
const CLAIM_KEYS: &[&str] = &[
    "name",
    "exact",
    "prefix",
    "suffix",
    "contains",
    "regex",
    "ignore_case",
    "any_of",
    "has",
    "present",
];
const HEADER_KEYS: &[&str] = &[
    "name",
    "exact",
    "prefix",
    "suffix",
    "contains",
    "regex",
    "ignore_case",
    "present",
    "invert",
];
/// Pseudo-header names a header test may use (Envoy's RBAC configs match `:method`,
/// `:path` and `:authority` this way).
const PSEUDO_HEADERS: &[&str] = &[":method", ":path", ":authority", ":scheme"];

/// A listener's `authorization` (`Some(None)` when absent).
pub(super) fn listener(map: &Map<'_>, diag: &mut Diagnostics) -> Option<Option<AuthzPolicy>> {
    match map.optional("authorization") {
        Some(n) => policy(&n, diag).map(Some),
        None => Some(None),
    }
}

/// A route's `authorization`: a policy, or `none` (`Some(None)` when absent).
pub(super) fn route(map: &Map<'_>, diag: &mut Diagnostics) -> Option<Option<RouteAuthz>> {
    let Some(node) = map.optional("authorization") else {
        return Some(None);
    };
    if let Some(text) = node.peek_str() {
        if text == "none" {
            return Some(Some(RouteAuthz::Disabled));
        }
        node.error(
            diag,
            format!(
                "unknown value {text:?}: `authorization` is a policy (a mapping with `rules`) or `none`"
            ),
        );
        return None;
    }
    policy(&node, diag).map(|p| Some(RouteAuthz::Policy(p)))
}

fn policy(node: &Node<'_>, diag: &mut Diagnostics) -> Option<AuthzPolicy> {
    let map = node.map(diag, POLICY_KEYS)?;
    let default = match map.optional("default") {
        Some(n) => choice(
            &n,
            diag,
            &[("allow", Decision::Allow), ("deny", Decision::Deny)],
        ),
        None => Some(Decision::Deny),
    };
    let shadow = optional_bool(&map, "shadow", false, diag);
    let rules = match map.field(diag, "rules") {
        Some(n) => rule_list(&n, diag),
        None => None,
    };
    let rules = Rules {
        rules: rules?,
        default: default?,
        log_only: false,
    };
    let (enforced, shadow) = if shadow? {
        (None, Some(rules))
    } else {
        (Some(rules), None)
    };
    Some(AuthzPolicy {
        enforced,
        shadow,
        ..AuthzPolicy::default()
    })
}

fn rule_list(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<Rule>> {
    let items = node.seq(diag)?;
    let mut rules = Vec::with_capacity(items.len());
    let mut failed = false;
    for (i, item) in items.iter().enumerate() {
        match rule(item, i, diag) {
            Some((rule, name_node)) => {
                if let Some(first) = rules.iter().position(|r: &Rule| r.name == rule.name) {
                    let at = name_node.unwrap_or_else(|| item.clone());
                    at.error(
                        diag,
                        format!(
                            "duplicate rule name {:?} (first used by rules[{first}])",
                            rule.name
                        ),
                    );
                    failed = true;
                }
                rules.push(rule);
            }
            None => failed = true,
        }
    }
    (!failed).then_some(rules)
}

fn rule<'a>(
    node: &Node<'a>,
    index: usize,
    diag: &mut Diagnostics,
) -> Option<(Rule, Option<Node<'a>>)> {
    let map = node.map(diag, RULE_KEYS)?;
    let name_node = map.optional("name");
    let name = match &name_node {
        Some(n) => n.str(diag).and_then(|text| {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
                n.error(
                    diag,
                    format!(
                        "{text:?}: a rule name is printable ASCII without spaces (it names stats)"
                    ),
                );
                return None;
            }
            Some(text.to_owned())
        }),
        None => Some(format!("rules[{index}]")),
    };
    let (decision, when) = match (map.optional("allow"), map.optional("deny")) {
        (Some(n), None) => (Decision::Allow, condition(&n, diag)),
        (None, Some(n)) => (Decision::Deny, condition(&n, diag)),
        (Some(_), Some(n)) => {
            n.error(diag, "a rule has `allow` or `deny`, not both");
            return None;
        }
        (None, None) => {
            map.error(
                diag,
                "a rule needs `allow: <condition>` or `deny: <condition>`",
            );
            return None;
        }
    };
    Some((
        Rule {
            name: name?,
            decision,
            when: when?,
        },
        name_node,
    ))
}

/// A condition mapping: each key a test, all of which must hold.
fn condition(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Condition> {
    let map = node.map(diag, CONDITION_KEYS)?;
    let mut tests = Vec::new();
    let mut failed = false;
    let mut any_key = false;
    for key in CONDITION_KEYS {
        let Some(n) = map.optional(key) else {
            continue;
        };
        any_key = true;
        match leaf(key, &n, diag) {
            Some(c) => tests.push(c),
            None => failed = true,
        }
    }
    if !any_key {
        if has_unknown_keys(node, CONDITION_KEYS) {
            return None;
        }
        map.error(
            diag,
            format!(
                "a condition needs at least one of {} (`any: true` always holds)",
                CONDITION_KEYS
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return None;
    }
    if failed {
        return None;
    }
    Some(match <[Condition; 1]>::try_from(tests) {
        Ok([single]) => single,
        Err(tests) => Condition::All(tests),
    })
}

fn leaf(key: &str, n: &Node<'_>, diag: &mut Diagnostics) -> Option<Condition> {
    Some(match key {
        "any" => {
            if let Some(b) = n.peek_bool() {
                if !b {
                    n.error(diag, "`any: false` never holds; leave the rule out");
                    return None;
                }
                Condition::Always
            } else {
                Condition::Any(non_empty_list(n, diag, "condition", condition)?)
            }
        }
        "all" => Condition::All(non_empty_list(n, diag, "condition", condition)?),
        "not" => Condition::Not(Box::new(condition(n, diag)?)),
        "peer" => peer(n, diag)?,
        "authenticated" => {
            let Some(b) = n.peek_bool() else {
                n.wrong_type(diag, "true or false");
                return None;
            };
            if b {
                Condition::Authenticated
            } else {
                Condition::Not(Box::new(Condition::Authenticated))
            }
        }
        "claim" => claim(n, diag)?,
        "consumer" => Condition::Consumer(one_or_many(n, diag, "consumer name", |item, diag| {
            let text = item.str(diag)?;
            if text.is_empty() {
                item.error(diag, "a consumer name is not empty");
                return None;
            }
            Some(text.to_owned())
        })?),
        "consumer_metadata" => consumer_metadata(n, diag)?,
        "source" => Condition::Source {
            kind: SourceKind::Remote,
            cidrs: cidrs(n, diag)?,
        },
        "direct_source" => Condition::Source {
            kind: SourceKind::Direct,
            cidrs: cidrs(n, diag)?,
        },
        "destination_ip" => Condition::DestinationIp(cidrs(n, diag)?),
        "port" => {
            let ports = one_or_many(n, diag, "port", |item, diag| {
                item.int_in(diag, "a port", 1..=65535)
                    .and_then(|p| u32::try_from(p).ok())
            })?;
            let tests: Vec<Condition> = ports
                .into_iter()
                .map(|p| Condition::DestinationPort {
                    start: p,
                    end: p + 1,
                })
                .collect();
            match <[Condition; 1]>::try_from(tests) {
                Ok([single]) => single,
                Err(tests) => Condition::Any(tests),
            }
        }
        "method" => Condition::Method(one_or_many(n, diag, "method", |item, diag| {
            let text = item.str(diag)?;
            if text.is_empty() || !text.bytes().all(token_byte) {
                item.error(diag, format!("{text:?} is not a method (an HTTP token)"));
                return None;
            }
            Some(text.to_owned())
        })?),
        "path" => Condition::Path(string_match(n, diag)?),
        "header" => header(n, diag)?,
        "server_name" => Condition::ServerName(string_match(n, diag)?),
        // CONDITION_KEYS and this match list the same keys.
        _ => return None,
    })
}

/// One item, or a non-empty list of them.
fn one_or_many<'a, T>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    what: &str,
    mut item: impl FnMut(&Node<'a>, &mut Diagnostics) -> Option<T>,
) -> Option<Vec<T>> {
    if node.is_seq() {
        non_empty_list(node, diag, what, item)
    } else {
        item(node, diag).map(|v| vec![v])
    }
}

fn peer(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Condition> {
    let field_test = |field, n: &Node<'_>, diag: &mut Diagnostics| {
        string_match(n, diag).map(|matcher| Condition::Peer { field, matcher })
    };
    if node.peek_str().is_some() || node.is_seq() {
        let names = one_or_many(node, diag, "name", |item, diag| {
            let text = item.str(diag)?;
            if text.is_empty() {
                item.error(diag, "a peer name is not empty");
                return None;
            }
            Some(text.to_owned())
        })?;
        let tests: Vec<Condition> = names
            .into_iter()
            .map(|name| Condition::Peer {
                field: PeerField::UriOrDns,
                matcher: StrMatch::exact(name),
            })
            .collect();
        return Some(match <[Condition; 1]>::try_from(tests) {
            Ok([single]) => single,
            Err(tests) => Condition::Any(tests),
        });
    }
    let map = node.map(diag, PEER_KEYS)?;
    let (key, n) = exactly_one(
        (node, &map),
        (PEER_KEYS, PEER_KEYS),
        diag,
        "a peer test has exactly one of `uri`, `dns`, `san` or `subject`",
    )?;
    let (key, n) = (&key, &n);
    let field = match *key {
        "uri" => PeerField::Uri,
        "dns" => PeerField::Dns,
        "san" => PeerField::UriOrDns,
        _ => PeerField::Subject,
    };
    field_test(field, n, diag)
}

fn claim(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Condition> {
    let map = node.map(diag, CLAIM_KEYS)?;
    let name = map.field(diag, "name").and_then(|n| {
        let text = n.str(diag)?;
        if text.is_empty() || text.split('.').any(str::is_empty) {
            n.error(
                diag,
                format!("{text:?} is not a claim name (a name, or a dotted path such as `realm_access.roles`)"),
            );
            return None;
        }
        Some(text.to_owned())
    });
    const TESTS: &[&str] = &[
        "exact", "prefix", "suffix", "contains", "regex", "any_of", "has", "present",
    ];
    let (key, n) = exactly_one(
        (node, &map),
        (TESTS, CLAIM_KEYS),
        diag,
        "a claim test has exactly one of `exact`, `prefix`, `suffix`, `contains`, `regex`, \
         `any_of`, `has` or `present`",
    )?;
    let (key, n) = (&key, &n);
    let ignore_case = optional_bool(&map, "ignore_case", false, diag)?;
    let (test, negate) = match *key {
        "any_of" => (
            ClaimTest::AnyOf(non_empty_list(n, diag, "value", claim_value)?),
            false,
        ),
        "has" => (
            ClaimTest::Scopes(one_or_many(n, diag, "scope", |item, diag| {
                let text = claim_value(item, diag)?;
                if text.is_empty() || text.contains(' ') {
                    item.error(
                        diag,
                        format!("{text:?} is not a scope (a word without spaces)"),
                    );
                    return None;
                }
                Some(text)
            })?),
            false,
        ),
        "present" => {
            let Some(b) = n.peek_bool() else {
                n.wrong_type(diag, "true or false");
                return None;
            };
            (ClaimTest::Present, !b)
        }
        kind => {
            let text = claim_value(n, diag)?;
            (
                ClaimTest::Text(match_of(kind, text, ignore_case, n, diag)?),
                false,
            )
        }
    };
    if ignore_case && matches!(*key, "any_of" | "has" | "present") {
        map.error(
            diag,
            "`ignore_case` applies to `exact`, `prefix`, `suffix` and `contains` only",
        );
        return None;
    }
    let leaf = Condition::Claim {
        source: ClaimSource::Jwt(name?),
        test,
    };
    Some(if negate {
        Condition::Not(Box::new(leaf))
    } else {
        leaf
    })
}

/// A claim value to compare with: a string, or a number or boolean written bare.
fn claim_value(node: &Node<'_>, diag: &mut Diagnostics) -> Option<String> {
    if let Some(b) = node.peek_bool() {
        return Some(b.to_string());
    }
    node.scalar_text(diag, "a string")
}

fn consumer_metadata(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Condition> {
    // Keys are free-form: read the mapping without a key list.
    let pairs = node.entries(diag)?;
    if pairs.is_empty() {
        node.error(diag, "`consumer_metadata` needs at least one `key: value`");
        return None;
    }
    let mut result = Vec::with_capacity(pairs.len());
    for (key, _, value) in pairs {
        let value = claim_value(&value, diag)?;
        result.push((key.to_owned(), value));
    }
    Some(Condition::ConsumerMetadata(result))
}

fn cidrs(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<Cidr>> {
    one_or_many(node, diag, "network", |item, diag| {
        item.parse_str(diag, super::decode_proxy::parse_cidr)
    })
}

fn header(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Condition> {
    let map = node.map(diag, HEADER_KEYS)?;
    let name = map.field(diag, "name").and_then(|n| {
        let text = n.str(diag)?;
        let lower = text.to_ascii_lowercase();
        let ok = PSEUDO_HEADERS.contains(&lower.as_str())
            || (!text.is_empty() && text.bytes().all(token_byte));
        if !ok {
            n.error(
                diag,
                format!("{text:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~, or :method, :path, :authority, :scheme)"),
            );
            return None;
        }
        Some(lower)
    });
    const TESTS: &[&str] = &["exact", "prefix", "suffix", "contains", "regex", "present"];
    let given = given(&map, TESTS);
    let ignore_case = optional_bool(&map, "ignore_case", false, diag);
    let invert = optional_bool(&map, "invert", false, diag);
    let value = match given.as_slice() {
        [] => Some(HeaderValue::Present(true)),
        [("present", n)] => match n.peek_bool() {
            Some(b) => Some(HeaderValue::Present(b)),
            None => {
                n.wrong_type(diag, "true or false");
                None
            }
        },
        [(kind, n)] => {
            let text = n.scalar_text(diag, "a string");
            match (text, ignore_case) {
                (Some(text), Some(ic)) => {
                    match_of(kind, text, ic, n, diag).map(HeaderValue::Matches)
                }
                _ => None,
            }
        }
        _ => {
            map.error(
                diag,
                "a header test has at most one of `exact`, `prefix`, `suffix`, `contains`, \
                 `regex` or `present` (none: present)",
            );
            None
        }
    };
    Some(Condition::Header(HeaderTest {
        name: name?,
        value: value?,
        invert: invert?,
        treat_missing_as_empty: false,
    }))
}

/// A `<match>`: a string (exact) or `{exact|prefix|suffix|contains|regex, ignore_case}`.
fn string_match(node: &Node<'_>, diag: &mut Diagnostics) -> Option<StrMatch> {
    if let Some(text) = node.peek_str() {
        return Some(StrMatch::exact(text));
    }
    let map = node.map(diag, MATCH_KEYS)?;
    let (kind, n) = exactly_one(
        (node, &map),
        (&MATCH_KEYS[..5], MATCH_KEYS),
        diag,
        "a string test has exactly one of `exact`, `prefix`, `suffix`, `contains` or `regex`",
    )?;
    let (kind, n) = (&kind, &n);
    let ignore_case = optional_bool(&map, "ignore_case", false, diag)?;
    let text = n.str(diag)?.to_owned();
    match_of(kind, text, ignore_case, n, diag)
}

fn match_of(
    kind: &str,
    text: String,
    ignore_case: bool,
    n: &Node<'_>,
    diag: &mut Diagnostics,
) -> Option<StrMatch> {
    let kind = match kind {
        "exact" => MatchKind::Exact(text),
        "prefix" => MatchKind::Prefix(text),
        "suffix" => MatchKind::Suffix(text),
        "contains" => MatchKind::Contains(text),
        _ => {
            if ignore_case {
                n.error(
                    diag,
                    "`ignore_case` does not apply to `regex`: start the pattern with `(?i)`",
                );
                return None;
            }
            if let Err(message) = anchored_regex(&text) {
                n.error(diag, message);
                return None;
            }
            MatchKind::Regex(text)
        }
    };
    Some(StrMatch { kind, ignore_case })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::authz::*;
    use crate::config::{Cidr, Config};

    const HEAD: &str = "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n";

    fn listener(policy: &str) -> Result<Option<AuthzPolicy>, Vec<String>> {
        let text = format!("{HEAD}    authorization:\n{policy}");
        match Config::parse(&text, Path::new("t.yaml")) {
            Ok(c) => Ok(c.listeners[0].authorization.clone()),
            Err(e) => Err(e.iter().map(ToString::to_string).collect()),
        }
    }

    fn rules_of(policy: &str) -> Rules {
        listener(policy)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .expect("a policy")
            .enforced
            .expect("enforced rules")
    }

    fn condition(cond: &str) -> Condition {
        let rules = rules_of(&format!("      rules: [ {{ allow: {cond} }} ]\n"));
        rules.rules[0].when.clone()
    }

    fn errors(policy: &str) -> Vec<String> {
        listener(policy).expect_err("errors")
    }

    fn refused(cond: &str) -> String {
        let e = errors(&format!("      rules: [ {{ allow: {cond} }} ]\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].clone()
    }

    fn exact(t: &str) -> StrMatch {
        StrMatch::exact(t)
    }

    #[test]
    fn policy_defaults_names_and_shadow() {
        let rules = rules_of("      rules:\n        - name: admins\n          allow: { method: GET }\n        - deny: { any: true }\n");
        assert_eq!(rules.default, Decision::Deny);
        assert!(!rules.log_only);
        assert_eq!(rules.rules[0].name, "admins");
        assert_eq!(rules.rules[0].decision, Decision::Allow);
        assert_eq!(rules.rules[0].when, Condition::Method(vec!["GET".into()]));
        assert_eq!(rules.rules[1].name, "rules[1]");
        assert_eq!(rules.rules[1].decision, Decision::Deny);
        assert_eq!(rules.rules[1].when, Condition::Always);
        let p = listener("      default: allow\n      shadow: true\n      rules: []\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.enforced, None);
        let shadow = p.shadow.expect("shadow rules");
        assert_eq!(shadow.default, Decision::Allow);
        assert!(shadow.rules.is_empty());
        assert_eq!(listener_absent(), None);
    }

    fn listener_absent() -> Option<AuthzPolicy> {
        Config::parse(HEAD, Path::new("t.yaml")).unwrap().listeners[0]
            .authorization
            .clone()
    }

    #[test]
    fn leaves() {
        let spiffe = "spiffe://cluster.local/ns/ops/sa/admin";
        assert_eq!(
            condition(&format!("{{ peer: \"{spiffe}\" }}")),
            Condition::Peer {
                field: PeerField::UriOrDns,
                matcher: exact(spiffe)
            }
        );
        assert_eq!(
            condition("{ peer: [a.example, b.example] }"),
            Condition::Any(vec![
                Condition::Peer {
                    field: PeerField::UriOrDns,
                    matcher: exact("a.example")
                },
                Condition::Peer {
                    field: PeerField::UriOrDns,
                    matcher: exact("b.example")
                },
            ])
        );
        assert_eq!(
            condition("{ peer: { uri: { prefix: \"spiffe://td/\" } } }"),
            Condition::Peer {
                field: PeerField::Uri,
                matcher: StrMatch {
                    kind: MatchKind::Prefix("spiffe://td/".into()),
                    ignore_case: false
                }
            }
        );
        assert_eq!(
            condition("{ peer: { subject: { regex: \"CN=.*\" } } }"),
            Condition::Peer {
                field: PeerField::Subject,
                matcher: StrMatch {
                    kind: MatchKind::Regex("CN=.*".into()),
                    ignore_case: false
                }
            }
        );
        assert_eq!(
            condition("{ authenticated: false }"),
            Condition::Not(Box::new(Condition::Authenticated))
        );
        let claim = |test| Condition::Claim {
            source: ClaimSource::Jwt("scope".into()),
            test,
        };
        assert_eq!(
            condition("{ claim: { name: scope, has: [orders:read, orders:write] } }"),
            claim(ClaimTest::Scopes(vec![
                "orders:read".into(),
                "orders:write".into()
            ]))
        );
        assert_eq!(
            condition("{ claim: { name: scope, has: orders:read } }"),
            claim(ClaimTest::Scopes(vec!["orders:read".into()]))
        );
        assert_eq!(
            condition("{ claim: { name: scope, any_of: [a, 42, true] } }"),
            claim(ClaimTest::AnyOf(vec![
                "a".into(),
                "42".into(),
                "true".into()
            ]))
        );
        assert_eq!(
            condition("{ claim: { name: scope, exact: A, ignore_case: true } }"),
            claim(ClaimTest::Text(StrMatch {
                kind: MatchKind::Exact("A".into()),
                ignore_case: true
            }))
        );
        assert_eq!(
            condition("{ claim: { name: scope, present: false } }"),
            Condition::Not(Box::new(claim(ClaimTest::Present)))
        );
        assert_eq!(
            condition("{ claim: { name: realm_access.roles, present: true } }"),
            Condition::Claim {
                source: ClaimSource::Jwt("realm_access.roles".into()),
                test: ClaimTest::Present
            }
        );
        assert_eq!(
            condition("{ consumer: [acme, globex] }"),
            Condition::Consumer(vec!["acme".into(), "globex".into()])
        );
        assert_eq!(
            condition("{ consumer_metadata: { plan: gold, tier: 1 } }"),
            Condition::ConsumerMetadata(vec![
                ("plan".into(), "gold".into()),
                ("tier".into(), "1".into())
            ])
        );
        let cidr = |network: &str, prefix_len| Cidr {
            network: network.parse().unwrap(),
            prefix_len,
        };
        assert_eq!(
            condition("{ source: 10.0.0.0/8 }"),
            Condition::Source {
                kind: SourceKind::Remote,
                cidrs: vec![cidr("10.0.0.0", 8)]
            }
        );
        assert_eq!(
            condition("{ direct_source: [192.0.2.1, \"fd00::/8\"] }"),
            Condition::Source {
                kind: SourceKind::Direct,
                cidrs: vec![cidr("192.0.2.1", 32), cidr("fd00::", 8)]
            }
        );
        assert_eq!(
            condition("{ destination_ip: 127.0.0.0/8 }"),
            Condition::DestinationIp(vec![cidr("127.0.0.0", 8)])
        );
        assert_eq!(
            condition("{ port: 443 }"),
            Condition::DestinationPort {
                start: 443,
                end: 444
            }
        );
        assert_eq!(
            condition("{ port: [80, 443] }"),
            Condition::Any(vec![
                Condition::DestinationPort { start: 80, end: 81 },
                Condition::DestinationPort {
                    start: 443,
                    end: 444
                }
            ])
        );
        assert_eq!(
            condition("{ path: /healthz }"),
            Condition::Path(exact("/healthz"))
        );
        assert_eq!(
            condition("{ path: { suffix: .JSON, ignore_case: true } }"),
            Condition::Path(StrMatch {
                kind: MatchKind::Suffix(".JSON".into()),
                ignore_case: true
            })
        );
        assert_eq!(
            condition("{ header: { name: X-Debug, exact: \"1\" } }"),
            Condition::Header(HeaderTest {
                name: "x-debug".into(),
                value: HeaderValue::Matches(exact("1")),
                invert: false,
                treat_missing_as_empty: false
            })
        );
        assert_eq!(
            condition("{ header: { name: \":authority\", present: false, invert: true } }"),
            Condition::Header(HeaderTest {
                name: ":authority".into(),
                value: HeaderValue::Present(false),
                invert: true,
                treat_missing_as_empty: false
            })
        );
        assert_eq!(
            condition("{ header: { name: x-tenant } }"),
            Condition::Header(HeaderTest {
                name: "x-tenant".into(),
                value: HeaderValue::Present(true),
                invert: false,
                treat_missing_as_empty: false
            })
        );
        assert_eq!(
            condition("{ server_name: { suffix: .example.com } }"),
            Condition::ServerName(StrMatch {
                kind: MatchKind::Suffix(".example.com".into()),
                ignore_case: false
            })
        );
    }

    #[test]
    fn combinators_and_implicit_all() {
        assert_eq!(
            condition("{ any: [ { method: GET }, { not: { path: { prefix: /admin } } } ] }"),
            Condition::Any(vec![
                Condition::Method(vec!["GET".into()]),
                Condition::Not(Box::new(Condition::Path(StrMatch {
                    kind: MatchKind::Prefix("/admin".into()),
                    ignore_case: false
                })))
            ])
        );
        // Several keys in one mapping: all must hold.
        assert_eq!(
            condition("{ method: [GET, HEAD], consumer: acme }"),
            Condition::All(vec![
                Condition::Consumer(vec!["acme".into()]),
                Condition::Method(vec!["GET".into(), "HEAD".into()]),
            ])
        );
        assert_eq!(
            condition("{ all: [ { any: true } ] }"),
            Condition::All(vec![Condition::Always])
        );
    }

    #[test]
    fn routes_replace_or_disable_the_listeners_policy() {
        let text = "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    authorization: { rules: [ { allow: { method: GET } } ] }\n    routes:\n      - match: { prefix: /open }\n        direct_response: { status: 200 }\n        authorization: none\n      - match: { prefix: /admin }\n        direct_response: { status: 200 }\n        authorization: { default: allow, rules: [ { deny: { source: 0.0.0.0/0 } } ] }\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n";
        let config = Config::parse(text, Path::new("t.yaml")).expect("parses");
        let routes = &config.listeners[0].routes;
        assert_eq!(routes[0].authorization, Some(RouteAuthz::Disabled));
        let Some(RouteAuthz::Policy(p)) = &routes[1].authorization else {
            panic!("a route policy");
        };
        assert_eq!(p.enforced.as_ref().unwrap().default, Decision::Allow);
        assert_eq!(routes[2].authorization, None);
        let bad = text.replace("authorization: none", "authorization: off");
        let e = Config::parse(&bad, Path::new("t.yaml")).expect_err("refused");
        assert_eq!(
            e.to_string().trim(),
            "t.yaml:8:24: listeners[0].routes[0].authorization: unknown value \"off\": `authorization` is a policy (a mapping with `rules`) or `none`"
        );
    }

    #[test]
    fn mistakes_are_positioned() {
        assert_eq!(
            errors("      defualt: allow\n      rules: []\n"),
            ["t.yaml:8:7: listeners[0].authorization.defualt: unknown key `defualt`; did you mean `default`?"]
        );
        assert_eq!(
            errors("      default: permit\n      rules: []\n"),
            ["t.yaml:8:16: listeners[0].authorization.default: unknown value \"permit\": expected one of `allow`, `deny`"]
        );
        assert_eq!(
            errors("      default: deny\n"),
            ["t.yaml:8:7: listeners[0].authorization: missing required key `rules`"]
        );
        assert_eq!(
            refused("{ methd: GET }"),
            "t.yaml:8:27: listeners[0].authorization.rules[0].allow.methd: unknown key `methd`; did you mean `method`?"
        );
        assert_eq!(
            errors("      rules: [ { allow: { method: GET }, deny: { method: PUT } } ]\n"),
            ["t.yaml:8:48: listeners[0].authorization.rules[0].deny: a rule has `allow` or `deny`, not both"]
        );
        assert_eq!(
            errors("      rules: [ { name: x } ]\n"),
            ["t.yaml:8:16: listeners[0].authorization.rules[0]: a rule needs `allow: <condition>` or `deny: <condition>`"]
        );
        assert_eq!(
            errors("      rules: [ { name: x, allow: { any: true } }, { name: x, deny: { any: true } } ]\n"),
            ["t.yaml:8:59: listeners[0].authorization.rules[1].name: duplicate rule name \"x\" (first used by rules[0])"]
        );
        assert!(refused("{}").contains("a condition needs at least one of `any`"));
        assert_eq!(
            refused("{ path: { regex: \"(\" } }"),
            "t.yaml:8:42: listeners[0].authorization.rules[0].allow.path.regex: invalid regex \"(\": unclosed group"
        );
        assert!(refused("{ path: { regex: a, ignore_case: true } }")
            .contains("start the pattern with `(?i)`"));
        assert!(refused("{ path: { prefix: a, suffix: b } }").contains("exactly one of"));
        assert!(refused("{ source: 10.0.0.0/33 }").contains("invalid prefix length"));
        assert!(refused("{ source: [] }").contains("at least one network is required"));
        assert!(refused("{ port: 0 }").contains("expected a port from 1 to 65535"));
        assert!(refused("{ method: \"GE T\" }").contains("is not a method"));
        assert!(refused("{ claim: { name: scope } }").contains("a claim test has exactly one of"));
        assert!(
            refused("{ claim: { name: \"a..b\", present: true } }").contains("is not a claim name")
        );
        assert!(refused("{ claim: { name: scope, has: \"a b\" } }").contains("is not a scope"));
        assert!(refused("{ claim: { name: s, has: a, ignore_case: true } }")
            .contains("`ignore_case` applies to"));
        assert!(refused("{ header: { name: \"x y\" } }").contains("is not a header name"));
        assert!(
            refused("{ header: { name: x, exact: a, present: true } }").contains("at most one of")
        );
        assert!(refused("{ peer: { uri: a, dns: b } }").contains("exactly one of `uri`"));
        assert!(refused("{ peer: { url: a } }").contains("did you mean `uri`?"));
        assert!(refused("{ any: false }").contains("never holds"));
        assert!(refused("{ consumer_metadata: {} }").contains("at least one"));
        assert!(refused("{ authenticated: yes }").contains("expected true or false"));
    }
}
