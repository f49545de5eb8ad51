//! Envoy's `envoy.filters.http.rbac` filter (and its per-route `RBACPerRoute`) onto
//! ringway's authorization policies (`config::authz`).
//!
//! Design: an `RBAC` (`rules`, `shadow_rules`) becomes an ordered rule list. Envoy's
//! policies are a map, evaluated in name order (its `std::map`), so the rules are
//! sorted by name; `ALLOW` makes each policy an allow rule with a default of deny,
//! `DENY` a deny rule with a default of allow, `LOG` allow rules with a default of allow
//! marked `log_only`. A policy holds when one of its permissions and one of its
//! principals hold. Permissions and principals map one to one onto conditions; the
//! metadata matchers Envoy configs use for JWT claims (filter
//! `envoy.filters.http.jwt_authn`, path `[payload_in_metadata, claim, ...]`) become claim
//! tests on the verified payload. Everything else (`matcher`, CEL `condition`,
//! `filter_state`, `uri_template`, header `range_match`, other filters' metadata, ...) is
//! refused by name, so no policy is silently weakened.

use prost_reflect::{MapKey, ReflectMessage, Value as Pv};

use super::cursor::Msg;
use crate::config::authz::{
    AuthzPolicy, ClaimSource, ClaimTest, Condition, Decision, HeaderTest, HeaderValue, MatchKind,
    PeerField, RouteAuthz, Rule, Rules, SourceKind, StrMatch,
};
use crate::config::error::Diagnostics;
use crate::config::model::Cidr;
use crate::config::pattern;

/// The filter whose dynamic metadata holds verified JWT payloads.
const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

/// The RBAC filter's `typed_config`: `None` when it has neither `rules` nor
/// `shadow_rules` (Envoy then enforces nothing).
pub(crate) fn filter(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<AuthzPolicy> {
    m.only(
        diag,
        &[
            "rules",
            "rules_stat_prefix",
            "shadow_rules",
            "shadow_rules_stat_prefix",
            "track_per_rule_stats",
        ],
    );
    let enforced = m.child("rules").and_then(|r| rules(&r, diag));
    let shadow = m.child("shadow_rules").and_then(|r| rules(&r, diag));
    if enforced.is_none() && shadow.is_none() {
        return None;
    }
    Some(AuthzPolicy {
        enforced,
        shadow,
        stat_prefix: m.str("rules_stat_prefix").unwrap_or_default().to_owned(),
        shadow_stat_prefix: m
            .str("shadow_rules_stat_prefix")
            .unwrap_or_default()
            .to_owned(),
        per_rule_stats: m.bool("track_per_rule_stats"),
    })
}

/// A virtual host's or route's `RBACPerRoute` under the RBAC filter's name (`rbac`,
/// `None` when the chain has no RBAC filter), when it has one.
pub(crate) fn per_route(
    m: &Msg<'_, '_>,
    rbac: Option<&str>,
    diag: &mut Diagnostics,
) -> Option<RouteAuthz> {
    let mut result = None;
    let entries = super::route::PerFilter {
        type_name: super::schema::RBAC_PER_ROUTE,
        filter: rbac,
        what: (
            "an RBACPerRoute",
            "an RBAC filter",
            "envoy.filters.http.rbac",
        ),
    };
    super::route::per_filter_config(m, entries, diag, |config, diag| {
        config.only(diag, &["rbac"]);
        // Without `rbac` (or with an empty one) the filter is off for this route.
        result = Some(match config.child("rbac").and_then(|r| filter(&r, diag)) {
            Some(policy) => RouteAuthz::Policy(policy),
            None => RouteAuthz::Disabled,
        });
    });
    result
}

/// An `envoy.config.rbac.v3.RBAC`.
fn rules(r: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Rules> {
    r.only(diag, &["action", "policies"]);
    let (decision, default, log_only) = match r.enum_name("action").as_deref() {
        None | Some("ALLOW") => (Decision::Allow, Decision::Deny, false),
        Some("DENY") => (Decision::Deny, Decision::Allow, false),
        Some("LOG") => (Decision::Allow, Decision::Allow, true),
        Some(other) => {
            r.error(diag, "action", format!("unknown action {other}"));
            return None;
        }
    };
    let mut policies = policies(r);
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    let mut result = Vec::with_capacity(policies.len());
    for (name, policy) in &policies {
        policy.only(diag, &["permissions", "principals"]);
        let permissions = one_of(
            policy
                .children("permissions")
                .iter()
                .map(|p| permission(p, diag))
                .collect::<Option<Vec<_>>>(),
        );
        let principals = one_of(
            policy
                .children("principals")
                .iter()
                .map(|p| principal(p, diag))
                .collect::<Option<Vec<_>>>(),
        );
        if let (Some(permissions), Some(principals)) = (permissions, principals) {
            result.push(Rule {
                name: name.clone(),
                decision,
                when: Condition::All(vec![permissions, principals]),
            });
        }
    }
    // A policy that failed has its error; the rest are still checked.
    (result.len() == policies.len()).then_some(Rules {
        rules: result,
        default,
        log_only,
    })
}

/// The `policies` map of an RBAC: each name and policy, with where it is.
fn policies<'m, 't>(r: &Msg<'m, 't>) -> Vec<(String, Msg<'m, 't>)> {
    let Some(field) = r.msg.descriptor().get_field_by_name("policies") else {
        return Vec::new();
    };
    if !r.msg.has_field(&field) {
        return Vec::new();
    }
    let std::borrow::Cow::Borrowed(Pv::Map(map)) = r.msg.get_field(&field) else {
        return Vec::new();
    };
    let at = r.at("policies");
    map.iter()
        .filter_map(|(key, value)| {
            let (MapKey::String(name), Pv::Message(policy)) = (key, value) else {
                return None;
            };
            Some((name.clone(), Msg::new(policy, at.key(name))))
        })
        .collect()
}

/// `any` of several conditions, or the one.
fn one_of(items: Option<Vec<Condition>>) -> Option<Condition> {
    let mut items = items?;
    Some(if items.len() == 1 {
        items.remove(0)
    } else {
        Condition::Any(items)
    })
}

fn permission(p: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Condition> {
    p.only(
        diag,
        &[
            "and_rules",
            "or_rules",
            "any",
            "header",
            "url_path",
            "destination_ip",
            "destination_port",
            "destination_port_range",
            "metadata",
            "sourced_metadata",
            "not_rule",
            "requested_server_name",
        ],
    );
    let set = |field: &str, diag: &mut Diagnostics| -> Option<Vec<Condition>> {
        let s = p.child(field)?;
        s.only(diag, &["rules"]);
        s.children("rules")
            .iter()
            .map(|r| permission(r, diag))
            .collect()
    };
    Some(if p.has("and_rules") {
        Condition::All(set("and_rules", diag)?)
    } else if p.has("or_rules") {
        Condition::Any(set("or_rules", diag)?)
    } else if p.has("any") {
        any(p, diag)?
    } else if let Some(h) = p.child("header") {
        Condition::Header(header(&h, diag)?)
    } else if let Some(u) = p.child("url_path") {
        Condition::Path(path_matcher(&u, diag)?)
    } else if let Some(c) = p.child("destination_ip") {
        Condition::DestinationIp(vec![cidr(&c, diag)?])
    } else if p.has("destination_port") {
        let port = p.uint("destination_port");
        let port = u32::try_from(port).unwrap_or(u32::MAX);
        Condition::DestinationPort {
            start: port,
            end: port.saturating_add(1),
        }
    } else if let Some(r) = p.child("destination_port_range") {
        port_range(&r, diag)?
    } else if let Some(m) = p.child("metadata") {
        metadata(&m, diag)?
    } else if let Some(s) = p.child("sourced_metadata") {
        sourced_metadata(&s, diag)?
    } else if let Some(n) = p.child("not_rule") {
        Condition::Not(Box::new(permission(&n, diag)?))
    } else if let Some(s) = p.child("requested_server_name") {
        Condition::ServerName(string_matcher(&s, diag)?)
    } else {
        // An unsupported rule has its error from `only`; an empty one, Envoy's.
        if !diag_has_rule(p) {
            p.error(diag, "any", "a permission needs a rule");
        }
        return None;
    })
}

fn principal(p: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Condition> {
    p.only(
        diag,
        &[
            "and_ids",
            "or_ids",
            "any",
            "authenticated",
            "source_ip",
            "direct_remote_ip",
            "remote_ip",
            "header",
            "url_path",
            "metadata",
            "sourced_metadata",
            "not_id",
        ],
    );
    let set = |field: &str, diag: &mut Diagnostics| -> Option<Vec<Condition>> {
        let s = p.child(field)?;
        s.only(diag, &["ids"]);
        s.children("ids")
            .iter()
            .map(|r| principal(r, diag))
            .collect()
    };
    let source = |field: &str, kind, diag: &mut Diagnostics| {
        let c = p.child(field)?;
        Some(Condition::Source {
            kind,
            cidrs: vec![cidr(&c, diag)?],
        })
    };
    Some(if p.has("and_ids") {
        Condition::All(set("and_ids", diag)?)
    } else if p.has("or_ids") {
        Condition::Any(set("or_ids", diag)?)
    } else if p.has("any") {
        any(p, diag)?
    } else if let Some(a) = p.child("authenticated") {
        a.only(diag, &["principal_name"]);
        match a.child("principal_name") {
            Some(name) => Condition::Peer {
                field: PeerField::Principal,
                matcher: string_matcher(&name, diag)?,
            },
            None => Condition::Authenticated,
        }
    } else if p.has("source_ip") {
        // Deprecated: the connection's peer.
        source("source_ip", SourceKind::Direct, diag)?
    } else if p.has("direct_remote_ip") {
        source("direct_remote_ip", SourceKind::Direct, diag)?
    } else if p.has("remote_ip") {
        source("remote_ip", SourceKind::Remote, diag)?
    } else if let Some(h) = p.child("header") {
        Condition::Header(header(&h, diag)?)
    } else if let Some(u) = p.child("url_path") {
        Condition::Path(path_matcher(&u, diag)?)
    } else if let Some(m) = p.child("metadata") {
        metadata(&m, diag)?
    } else if let Some(s) = p.child("sourced_metadata") {
        sourced_metadata(&s, diag)?
    } else if let Some(n) = p.child("not_id") {
        Condition::Not(Box::new(principal(&n, diag)?))
    } else {
        if !diag_has_rule(p) {
            p.error(diag, "any", "a principal needs an identifier");
        }
        return None;
    })
}

/// Whether some field of the message is set (an unsupported one, already refused).
fn diag_has_rule(m: &Msg<'_, '_>) -> bool {
    m.msg.fields().next().is_some()
}

/// `any: true` (Envoy's validation allows no other value).
fn any(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Condition> {
    if m.bool("any") {
        Some(Condition::Always)
    } else {
        m.error(diag, "any", "`any` must be true");
        None
    }
}

/// A `CidrRange`.
fn cidr(c: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Cidr> {
    c.only(diag, &["address_prefix", "prefix_len"]);
    let prefix = c.str("address_prefix").unwrap_or_default();
    let Ok(network) = prefix.parse::<std::net::IpAddr>() else {
        c.error(
            diag,
            "address_prefix",
            format!("{prefix:?} is not an IP address"),
        );
        return None;
    };
    let max = if network.is_ipv4() { 32 } else { 128 };
    let len = c.wrapped_uint("prefix_len").unwrap_or(0);
    match u8::try_from(len) {
        Ok(prefix_len) if len <= max => Some(Cidr {
            network,
            prefix_len,
        }),
        _ => {
            c.error(
                diag,
                "prefix_len",
                format!("{len} is longer than the address ({max} bits)"),
            );
            None
        }
    }
}

/// An `Int32Range` of ports, `[start, end)`.
fn port_range(r: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Condition> {
    r.only(diag, &["start", "end"]);
    let int = |field: &str| {
        r.msg
            .get_field_by_name(field)
            .as_deref()
            .and_then(Pv::as_i32)
            .map_or(0, i64::from)
    };
    let (start, end) = (int("start"), int("end"));
    for (field, v) in [("start", start), ("end", end)] {
        if !(0..=65536).contains(&v) {
            r.error(diag, field, format!("range {field} {v} is out of bounds"));
            return None;
        }
    }
    if start >= end {
        r.error(
            diag,
            "end",
            format!("range start {start} cannot be greater or equal than range end {end}"),
        );
        return None;
    }
    Some(Condition::DestinationPort {
        start: u32::try_from(start).ok()?,
        end: u32::try_from(end).ok()?,
    })
}

/// A `route.v3.HeaderMatcher`, with Envoy's rules for absent headers.
fn header(h: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<HeaderTest> {
    h.only(
        diag,
        &[
            "name",
            "exact_match",
            "safe_regex_match",
            "present_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
            "string_match",
            "invert_match",
            "treat_missing_header_as_empty",
        ],
    );
    let name = h.str("name").unwrap_or_default().to_ascii_lowercase();
    let text = |field: &str| h.str(field).unwrap_or_default().to_owned();
    let matches = |kind| {
        Some(HeaderValue::Matches(StrMatch {
            kind,
            ignore_case: false,
        }))
    };
    let value = if let Some(s) = h.child("string_match") {
        Some(HeaderValue::Matches(string_matcher(&s, diag)?))
    } else if h.has("present_match") {
        Some(HeaderValue::Present(h.bool("present_match")))
    } else if h.has("exact_match") {
        // Envoy's rule: an empty `exact_match` matches any value.
        match h.str("exact_match") {
            Some(t) => matches(MatchKind::Exact(t.to_owned())),
            None => Some(HeaderValue::Present(true)),
        }
    } else if h.has("prefix_match") {
        matches(MatchKind::Prefix(text("prefix_match")))
    } else if h.has("suffix_match") {
        matches(MatchKind::Suffix(text("suffix_match")))
    } else if h.has("contains_match") {
        matches(MatchKind::Contains(text("contains_match")))
    } else if let Some(re) = h.child("safe_regex_match") {
        matches(MatchKind::Regex(regex(&re, diag)?))
    } else {
        // No matcher: the header must be present (Envoy's rule).
        Some(HeaderValue::Present(true))
    };
    Some(HeaderTest {
        name,
        value: value?,
        invert: h.bool("invert_match"),
        treat_missing_as_empty: h.bool("treat_missing_header_as_empty"),
    })
}

/// A `PathMatcher` (`url_path`): its `path` string matcher, on the path without query.
fn path_matcher(u: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<StrMatch> {
    u.only(diag, &["path"]);
    match u.child("path") {
        Some(s) => string_matcher(&s, diag),
        None => {
            u.error(diag, "path", "`url_path` needs a `path` string matcher");
            None
        }
    }
}

/// A `StringMatcher`.
fn string_matcher(s: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<StrMatch> {
    s.only(
        diag,
        &[
            "exact",
            "prefix",
            "suffix",
            "contains",
            "safe_regex",
            "ignore_case",
        ],
    );
    let text = |field: &str| s.str(field).unwrap_or_default().to_owned();
    let kind = if s.has("prefix") {
        MatchKind::Prefix(text("prefix"))
    } else if s.has("suffix") {
        MatchKind::Suffix(text("suffix"))
    } else if s.has("contains") {
        MatchKind::Contains(text("contains"))
    } else if let Some(re) = s.child("safe_regex") {
        MatchKind::Regex(regex(&re, diag)?)
    } else {
        MatchKind::Exact(text("exact"))
    };
    // Envoy: `ignore_case` has no effect on `safe_regex`.
    let ignore_case = s.bool("ignore_case") && !matches!(kind, MatchKind::Regex(_));
    Some(StrMatch { kind, ignore_case })
}

/// A `RegexMatcher`, checked to compile.
fn regex(re: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<String> {
    re.only(diag, &["regex", "google_re2"]);
    let text = re.str("regex").unwrap_or_default();
    match pattern::anchored_regex(text) {
        Ok(_) => Some(text.to_owned()),
        Err(message) => {
            re.error(diag, "regex", message);
            None
        }
    }
}

/// A `SourcedMetadata`: dynamic metadata only (route metadata is not kept).
fn sourced_metadata(s: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Condition> {
    s.only(diag, &["metadata_matcher", "metadata_source"]);
    if let Some(source) = s.enum_name("metadata_source").filter(|s| s != "DYNAMIC") {
        s.error(
            diag,
            "metadata_source",
            format!("metadata_source {source} is not supported: ringway matches the dynamic metadata of envoy.filters.http.jwt_authn only"),
        );
        return None;
    }
    let Some(m) = s.child("metadata_matcher") else {
        s.error(diag, "metadata_matcher", "`metadata_matcher` is required");
        return None;
    };
    metadata(&m, diag)
}

/// A `MetadataMatcher` on the JWT payloads `jwt_authn` stores (`payload_in_metadata`).
fn metadata(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Condition> {
    m.only(diag, &["filter", "path", "value", "invert"]);
    let filter = m.str("filter").unwrap_or_default();
    if filter != JWT_AUTHN {
        m.error(
            diag,
            "filter",
            format!("metadata of {filter:?} is not available: ringway matches the JWT payloads of {JWT_AUTHN} (its payload_in_metadata) only"),
        );
        return None;
    }
    let mut keys = Vec::new();
    for segment in m.children("path") {
        segment.only(diag, &["key"]);
        keys.push(segment.str("key").unwrap_or_default().to_owned());
    }
    if keys.is_empty() {
        m.error(
            diag,
            "path",
            "`path` starts with the provider's payload_in_metadata name",
        );
        return None;
    }
    let key = keys.remove(0);
    let Some(v) = m.child("value") else {
        m.error(diag, "value", "`value` is required");
        return None;
    };
    let leaf = Condition::Claim {
        source: ClaimSource::Payload { key, path: keys },
        test: value_matcher(&v, diag)?,
    };
    Some(if m.bool("invert") {
        Condition::Not(Box::new(leaf))
    } else {
        leaf
    })
}

/// A `ValueMatcher`.
fn value_matcher(v: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<ClaimTest> {
    v.only(
        diag,
        &[
            "null_match",
            "double_match",
            "string_match",
            "bool_match",
            "present_match",
            "list_match",
            "or_match",
        ],
    );
    Some(if v.has("null_match") {
        ClaimTest::Null
    } else if let Some(d) = v.child("double_match") {
        d.only(diag, &["range", "exact"]);
        if let Some(r) = d.child("range") {
            r.only(diag, &["start", "end"]);
            let f = |field: &str| {
                r.msg
                    .get_field_by_name(field)
                    .as_deref()
                    .and_then(Pv::as_f64)
                    .unwrap_or(0.0)
            };
            ClaimTest::NumberRange {
                start: f("start"),
                end: f("end"),
            }
        } else {
            ClaimTest::Number(
                d.msg
                    .get_field_by_name("exact")
                    .as_deref()
                    .and_then(Pv::as_f64)
                    .unwrap_or(0.0),
            )
        }
    } else if let Some(s) = v.child("string_match") {
        ClaimTest::String(string_matcher(&s, diag)?)
    } else if v.has("bool_match") {
        ClaimTest::Bool(v.bool("bool_match"))
    } else if v.has("present_match") {
        if v.bool("present_match") {
            ClaimTest::Present
        } else {
            // Envoy's rule: `present_match: false` never matches.
            ClaimTest::Or(Vec::new())
        }
    } else if let Some(l) = v.child("list_match") {
        l.only(diag, &["one_of"]);
        let Some(one) = l.child("one_of") else {
            l.error(diag, "one_of", "`list_match` needs `one_of`");
            return None;
        };
        ClaimTest::List(Box::new(value_matcher(&one, diag)?))
    } else if let Some(o) = v.child("or_match") {
        o.only(diag, &["value_matchers"]);
        ClaimTest::Or(
            o.children("value_matchers")
                .iter()
                .map(|m| value_matcher(m, diag))
                .collect::<Option<_>>()?,
        )
    } else {
        if !diag_has_rule(v) {
            v.error(diag, "present_match", "a value matcher needs a match");
        }
        return None;
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::authz::*;
    use crate::config::{Cidr, Config};

    /// A bootstrap with an RBAC filter whose `typed_config` continues with `rbac`
    /// (indented 14), and `route_extra` / `vh_extra` lines on the route and the virtual
    /// host (indented 16 and 14).
    fn bootstrap(rbac: &str, vh_extra: &str, route_extra: &str) -> String {
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
{vh_extra}              routes:
              - match: {{ prefix: "/a" }}
                direct_response: {{ status: 200 }}
{route_extra}              - match: {{ prefix: "/" }}
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

    fn load(text: &str) -> Config {
        Config::parse(text, Path::new("envoy.yaml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(text: &str) -> Vec<String> {
        match Config::parse(text, Path::new("envoy.yaml")) {
            Ok(c) => panic!("expected errors, loaded {:?}", c.listeners[0].authorization),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    /// The listener's policy for `rules:` text (indented 16) under `rules`.
    fn policy(rules: &str) -> AuthzPolicy {
        let config = load(&bootstrap(
            &format!("              rules:\n{rules}"),
            "",
            "",
        ));
        config.listeners[0].authorization.clone().expect("a policy")
    }

    /// The single rule's condition of an ALLOW policy `p` with these permission and
    /// principal lines (indented 20).
    fn when(permissions: &str, principals: &str) -> Condition {
        let p = policy(&format!(
            "                policies:\n                  p:\n                    permissions:\n{permissions}                    principals:\n{principals}"
        ));
        let rules = p.enforced.expect("rules");
        assert_eq!(rules.rules.len(), 1);
        rules.rules[0].when.clone()
    }

    const ANY: &str = "                    - any: true\n";

    fn principal(lines: &str) -> Condition {
        match when(ANY, lines) {
            Condition::All(mut v) => v.remove(1),
            other => panic!("{other:?}"),
        }
    }

    fn permission(lines: &str) -> Condition {
        match when(lines, ANY) {
            Condition::All(mut v) => v.remove(0),
            other => panic!("{other:?}"),
        }
    }

    fn refused(rbac: &str) -> String {
        let e = errors(&bootstrap(rbac, "", ""));
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].clone()
    }

    fn cidr(network: &str, prefix_len: u8) -> Cidr {
        Cidr {
            network: network.parse().unwrap(),
            prefix_len,
        }
    }

    fn sm(kind: MatchKind, ignore_case: bool) -> StrMatch {
        StrMatch { kind, ignore_case }
    }

    #[test]
    fn actions_map_to_rules_and_defaults() {
        let lines = "                policies:\n                  zeta: { permissions: [ { any: true } ], principals: [ { any: true } ] }\n                  alpha: { permissions: [ { any: true } ], principals: [ { any: true } ] }\n";
        let allow = policy(lines).enforced.unwrap();
        assert_eq!((allow.default, allow.log_only), (Decision::Deny, false));
        // Envoy's policies are a map, evaluated in name order.
        let names: Vec<_> = allow.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert!(allow.rules.iter().all(|r| r.decision == Decision::Allow));
        assert_eq!(
            allow.rules[0].when,
            Condition::All(vec![Condition::Always, Condition::Always])
        );
        let deny = policy(&format!("                action: DENY\n{lines}"))
            .enforced
            .unwrap();
        assert_eq!((deny.default, deny.log_only), (Decision::Allow, false));
        assert!(deny.rules.iter().all(|r| r.decision == Decision::Deny));
        let log = policy(&format!("                action: LOG\n{lines}"))
            .enforced
            .unwrap();
        assert_eq!((log.default, log.log_only), (Decision::Allow, true));
        assert!(log.rules.iter().all(|r| r.decision == Decision::Allow));
        // An ALLOW without policies denies everything.
        let empty = policy("                action: ALLOW\n").enforced.unwrap();
        assert!(empty.rules.is_empty());
        assert_eq!(empty.default, Decision::Deny);
    }

    #[test]
    fn shadow_rules_and_stat_prefixes() {
        let config = load(&bootstrap(
            "              shadow_rules: { action: DENY }\n              shadow_rules_stat_prefix: rollout_\n              rules_stat_prefix: enforced_\n              track_per_rule_stats: true\n",
            "",
            "",
        ));
        let p = config.listeners[0].authorization.clone().unwrap();
        assert_eq!(p.enforced, None);
        assert_eq!(p.shadow.unwrap().default, Decision::Allow);
        assert_eq!(p.shadow_stat_prefix, "rollout_");
        assert_eq!(p.stat_prefix, "enforced_");
        assert!(p.per_rule_stats);
        // A filter without rules enforces nothing.
        let config = load(&bootstrap("              rules_stat_prefix: x_\n", "", ""));
        assert_eq!(config.listeners[0].authorization, None);
    }

    #[test]
    fn permissions() {
        assert_eq!(
            permission("                    - header: { name: \":method\", exact_match: GET }\n"),
            Condition::Header(HeaderTest {
                name: ":method".into(),
                value: HeaderValue::Matches(StrMatch::exact("GET")),
                invert: false,
                treat_missing_as_empty: false
            })
        );
        assert_eq!(
            permission("                    - header: { name: X-A, string_match: { suffix: b, ignore_case: true }, invert_match: true, treat_missing_header_as_empty: true }\n"),
            Condition::Header(HeaderTest {
                name: "x-a".into(),
                value: HeaderValue::Matches(sm(MatchKind::Suffix("b".into()), true)),
                invert: true,
                treat_missing_as_empty: true
            })
        );
        assert_eq!(
            permission("                    - header: { name: x-a, present_match: false }\n"),
            Condition::Header(HeaderTest {
                name: "x-a".into(),
                value: HeaderValue::Present(false),
                invert: false,
                treat_missing_as_empty: false
            })
        );
        assert_eq!(
            permission("                    - url_path: { path: { safe_regex: { regex: \"/v[0-9]+/.*\" }, ignore_case: true } }\n"),
            Condition::Path(sm(MatchKind::Regex("/v[0-9]+/.*".into()), false))
        );
        assert_eq!(
            permission("                    - url_path: { path: { contains: admin } }\n"),
            Condition::Path(sm(MatchKind::Contains("admin".into()), false))
        );
        assert_eq!(
            permission("                    - destination_ip: { address_prefix: 10.0.0.0, prefix_len: 8 }\n"),
            Condition::DestinationIp(vec![cidr("10.0.0.0", 8)])
        );
        assert_eq!(
            permission("                    - destination_port: 443\n"),
            Condition::DestinationPort {
                start: 443,
                end: 444
            }
        );
        assert_eq!(
            permission(
                "                    - destination_port_range: { start: 8000, end: 9000 }\n"
            ),
            Condition::DestinationPort {
                start: 8000,
                end: 9000
            }
        );
        assert_eq!(
            permission("                    - requested_server_name: { exact: api.example.com }\n"),
            Condition::ServerName(StrMatch::exact("api.example.com"))
        );
        assert_eq!(
            permission("                    - and_rules: { rules: [ { any: true }, { not_rule: { destination_port: 80 } } ] }\n                    - or_rules: { rules: [ { any: true } ] }\n"),
            Condition::Any(vec![
                Condition::All(vec![
                    Condition::Always,
                    Condition::Not(Box::new(Condition::DestinationPort { start: 80, end: 81 }))
                ]),
                Condition::Any(vec![Condition::Always]),
            ])
        );
    }

    #[test]
    fn principals() {
        assert_eq!(
            principal("                    - authenticated: { principal_name: { exact: \"spiffe://td/ns/a/sa/b\" } }\n"),
            Condition::Peer {
                field: PeerField::Principal,
                matcher: StrMatch::exact("spiffe://td/ns/a/sa/b")
            }
        );
        assert_eq!(
            principal("                    - authenticated: {}\n"),
            Condition::Authenticated
        );
        let source = |kind| Condition::Source {
            kind,
            cidrs: vec![cidr("192.0.2.0", 24)],
        };
        assert_eq!(
            principal(
                "                    - remote_ip: { address_prefix: 192.0.2.0, prefix_len: 24 }\n"
            ),
            source(SourceKind::Remote)
        );
        assert_eq!(
            principal("                    - direct_remote_ip: { address_prefix: 192.0.2.0, prefix_len: 24 }\n"),
            source(SourceKind::Direct)
        );
        assert_eq!(
            principal(
                "                    - source_ip: { address_prefix: 192.0.2.0, prefix_len: 24 }\n"
            ),
            source(SourceKind::Direct)
        );
        assert_eq!(
            principal("                    - and_ids: { ids: [ { any: true }, { not_id: { url_path: { path: { prefix: /x } } } } ] }\n"),
            Condition::All(vec![
                Condition::Always,
                Condition::Not(Box::new(Condition::Path(sm(
                    MatchKind::Prefix("/x".into()),
                    false
                ))))
            ])
        );
        assert_eq!(
            principal("                    - metadata: { filter: envoy.filters.http.jwt_authn, path: [ { key: p }, { key: realm }, { key: roles } ], value: { list_match: { one_of: { string_match: { exact: admin } } } }, invert: true }\n"),
            Condition::Not(Box::new(Condition::Claim {
                source: ClaimSource::Payload {
                    key: "p".into(),
                    path: vec!["realm".into(), "roles".into()]
                },
                test: ClaimTest::List(Box::new(ClaimTest::String(StrMatch::exact("admin"))))
            }))
        );
        let claim = |test| Condition::Claim {
            source: ClaimSource::Payload {
                key: "p".into(),
                path: vec!["c".into()],
            },
            test,
        };
        let value = |v: &str| {
            principal(&format!(
                "                    - sourced_metadata: {{ metadata_matcher: {{ filter: envoy.filters.http.jwt_authn, path: [ {{ key: p }}, {{ key: c }} ], value: {v} }} }}\n"
            ))
        };
        assert_eq!(value("{ present_match: true }"), claim(ClaimTest::Present));
        assert_eq!(
            value("{ present_match: false }"),
            claim(ClaimTest::Or(Vec::new()))
        );
        assert_eq!(value("{ bool_match: true }"), claim(ClaimTest::Bool(true)));
        assert_eq!(value("{ null_match: {} }"), claim(ClaimTest::Null));
        assert_eq!(
            value("{ double_match: { exact: 2.5 } }"),
            claim(ClaimTest::Number(2.5))
        );
        assert_eq!(
            value("{ double_match: { range: { start: 1, end: 5 } } }"),
            claim(ClaimTest::NumberRange {
                start: 1.0,
                end: 5.0
            })
        );
        assert_eq!(
            value("{ or_match: { value_matchers: [ { bool_match: true }, { string_match: { prefix: a } } ] } }"),
            claim(ClaimTest::Or(vec![
                ClaimTest::Bool(true),
                ClaimTest::String(sm(MatchKind::Prefix("a".into()), false))
            ]))
        );
    }

    #[test]
    fn per_route_configs_replace_or_disable_the_filter() {
        let per_route = |indent: usize, rbac: &str| {
            let pad = " ".repeat(indent);
            format!("{pad}typed_per_filter_config:\n{pad}  envoy.filters.http.rbac:\n{pad}    \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute\n{rbac}")
        };
        let filter = "              rules: { action: DENY }\n";
        // A route's RBACPerRoute without `rbac`: off on that route; the host's applies to
        // the others.
        let text = bootstrap(
            filter,
            &per_route(
                14,
                "                  rbac: { rules: { action: ALLOW }, shadow_rules_stat_prefix: vh_ }\n",
            ),
            &per_route(16, ""),
        );
        let config = load(&text);
        let l = &config.listeners[0];
        assert_eq!(
            l.authorization
                .as_ref()
                .unwrap()
                .enforced
                .as_ref()
                .unwrap()
                .default,
            Decision::Allow
        );
        let routes = &l.virtual_hosts[0].routes;
        assert_eq!(routes[0].authorization, Some(RouteAuthz::Disabled));
        let Some(RouteAuthz::Policy(p)) = &routes[1].authorization else {
            panic!("{:?}", routes[1].authorization);
        };
        assert_eq!(p.shadow_stat_prefix, "vh_");
        assert_eq!(p.enforced.as_ref().unwrap().default, Decision::Deny);
        // An RBACPerRoute with an empty `rbac`: off too.
        let text = bootstrap(filter, "", &per_route(16, "                    rbac: {}\n"));
        assert_eq!(
            load(&text).listeners[0].virtual_hosts[0].routes[0].authorization,
            Some(RouteAuthz::Disabled)
        );
        // Without an RBAC filter in the chain it would do nothing: refused.
        let text = bootstrap(filter, "", &per_route(16, "")).replace(
            "envoy.filters.http.rbac:\n                    \"@type\"",
            "other:\n                    \"@type\"",
        );
        let e = errors(&text);
        assert!(
            e[0].contains("an RBACPerRoute under \"other\" needs an RBAC filter of that name"),
            "{e:?}"
        );
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        let unsupported = |field: &str, message: &str| {
            format!("unsupported: ringway does not implement `{field}` of {message} (yet); remove it or see docs/envoy.md")
        };
        let e = refused("              matcher: { on_no_match: { matcher: {} } }\n");
        assert!(
            e.ends_with(&unsupported(
                "matcher",
                "envoy.extensions.filters.http.rbac.v3.RBAC"
            )),
            "{e}"
        );
        assert!(e.contains("typed_config.matcher:"), "{e}");
        let e = refused("              shadow_matcher: { on_no_match: { matcher: {} } }\n");
        assert!(e.contains("`shadow_matcher`"), "{e}");
        let policies = |body: &str| {
            format!("              rules:\n                policies:\n                  p:\n{body}")
        };
        let e = refused(&policies("                    permissions: [ { any: true } ]\n                    principals: [ { any: true } ]\n                    condition: { const_expr: { bool_value: true } }\n"));
        assert!(e.contains("rules.policies[\"p\"].condition:"), "{e}");
        assert!(
            e.ends_with(&unsupported("condition", "envoy.config.rbac.v3.Policy")),
            "{e}"
        );
        let e = refused(&policies("                    permissions: [ { any: true } ]\n                    principals: [ { filter_state: { key: k, string_match: { exact: v } } } ]\n"));
        assert!(e.contains("principals[0].filter_state:"), "{e}");
        let e = refused(&policies("                    permissions: [ { header: { name: x, range_match: { start: 1, end: 2 } } } ]\n                    principals: [ { any: true } ]\n"));
        assert!(e.contains("permissions[0].header.range_match:"), "{e}");
        let e = refused(&policies("                    permissions: [ { url_path: { path: { exact: /a }, ignore_case: true } } ]\n                    principals: [ { any: true } ]\n"));
        assert!(e.contains("url_path.ignore_case:"), "{e}");
        let e = refused(&policies("                    permissions: [ { metadata: { filter: envoy.filters.http.ext_authz, path: [ { key: a } ], value: { present_match: true } } } ]\n                    principals: [ { any: true } ]\n"));
        assert!(
            e.contains("metadata of \"envoy.filters.http.ext_authz\" is not available"),
            "{e}"
        );
        let e = refused(&policies("                    permissions: [ { sourced_metadata: { metadata_matcher: { filter: envoy.filters.http.jwt_authn, path: [ { key: a } ], value: { present_match: true } }, metadata_source: ROUTE } } ]\n                    principals: [ { any: true } ]\n"));
        assert!(e.contains("metadata_source ROUTE is not supported"), "{e}");
        let e = refused(&policies("                    permissions: [ { destination_port_range: { start: 9000, end: 8000 } } ]\n                    principals: [ { any: true } ]\n"));
        assert!(e.contains("cannot be greater or equal"), "{e}");
        let e = refused(&policies("                    permissions: [ { url_path: { path: { safe_regex: { regex: \"(\" } } } } ]\n                    principals: [ { any: true } ]\n"));
        assert!(e.contains("unclosed group"), "{e}");
        let e = refused(
            "              rules: { audit_logging_options: { audit_condition: ON_DENY } }\n",
        );
        assert!(e.contains("`audit_logging_options`"), "{e}");
        // Two RBAC filters in one chain.
        let text = bootstrap("              rules: {}\n", "", "").replace(
            "          - name: envoy.filters.http.router\n",
            "          - name: second\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC\n          - name: envoy.filters.http.router\n",
        );
        let e = errors(&text);
        assert!(
            e[0].contains("one RBAC filter per connection manager"),
            "{e:?}"
        );
    }
}
