//! The authorization engine: a compiled [`AuthzPolicy`] evaluated against a request.
//!
//! Design: [`Policy::compile`] turns the config model into a tree of matchers once per
//! snapshot (regexes compiled, strings lowered for case-insensitive tests, methods as
//! bytes), and [`Policy::evaluate`] walks it over an [`AuthzInput`], a trait the
//! request path implements over what it already holds (the parsed head, the
//! connection's peer identity, verified tokens, the consumer). Evaluation borrows
//! everything and allocates nothing; a [`Decision`] names the deciding rule by a
//! `&str` into the policy, for logs and stats.
//!
//! Semantics (see `config::authz`): the first rule whose condition holds decides, else
//! the default; shadow rules are evaluated the same way and reported beside the
//! enforced decision without changing it. A policy without enforced rules allows.
//! Regexes are checked when the config is read; one that would not compile here (never,
//! as both use `config::pattern`) never matches.

use std::net::IpAddr;

use regex::bytes::Regex;
use serde_json::Value;

use crate::config::auth::Consumer;
use crate::config::authz::{
    AuthzPolicy, ClaimSource, ClaimTest, Condition, Decision as RuleDecision, HeaderTest,
    HeaderValue, MatchKind, PeerField, Rules, SourceKind, StrMatch,
};
use crate::config::Cidr;
use crate::tls::identity::PeerIdentity;

/// What a policy reads of a request. Implemented by the request path over borrowed
/// state; every method is a lookup, never a computation that allocates.
pub trait AuthzInput {
    fn method(&self) -> &[u8];
    /// The path, without the query.
    fn path(&self) -> &[u8];
    /// A request header by lower-case name (several fields of one name joined with
    /// `,`, as Envoy matches them). Pseudo-headers are answered too, since Envoy RBAC
    /// configs match on them: `:method`, `:path` (with the query), `:authority` (the
    /// `Host`), `:scheme`.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The client after `x-forwarded-for` trust (Envoy's `remote_ip`).
    fn remote_ip(&self) -> Option<IpAddr>;
    /// The TCP peer (Envoy's `direct_remote_ip`).
    fn direct_remote_ip(&self) -> Option<IpAddr>;
    /// The local address the connection was accepted on (Envoy's `destination_ip`).
    fn destination_ip(&self) -> Option<IpAddr>;
    fn destination_port(&self) -> Option<u16>;
    /// The TLS server name the client sent (SNI).
    fn server_name(&self) -> Option<&[u8]>;
    /// The verified client certificate's identity.
    fn peer(&self) -> Option<&PeerIdentity>;
    /// A claim by dotted path, from the first verified JWT that has it.
    fn claim(&self, dotted_path: &str) -> Option<&Value>;
    /// The payload a provider stored under its `payload_in_metadata` name.
    fn jwt_payload(&self, metadata_key: &str) -> Option<&Value>;
    /// The consumer whose API key the request carried.
    fn consumer(&self) -> Option<&Consumer>;
}

/// The outcome of a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The rule that decided (`None`: the default, or no enforced rules).
    pub matched: Option<&'p str>,
    /// The shadow rules' decision and deciding rule, when the policy has shadow rules.
    pub shadow: Option<(bool, Option<&'p str>)>,
}

/// A compiled policy, shared read-only by the workers of a snapshot.
#[derive(Debug)]
pub struct Policy {
    enforced: Option<Compiled>,
    shadow: Option<Compiled>,
    stat_prefix: String,
    shadow_stat_prefix: String,
    per_rule_stats: bool,
}

#[derive(Debug)]
struct Compiled {
    rules: Vec<CompiledRule>,
    default_allow: bool,
    log_only: bool,
}

#[derive(Debug)]
struct CompiledRule {
    name: String,
    allow: bool,
    when: Node,
}

impl Policy {
    pub fn compile(policy: &AuthzPolicy) -> Policy {
        Policy {
            enforced: policy.enforced.as_ref().map(Compiled::new),
            shadow: policy.shadow.as_ref().map(Compiled::new),
            stat_prefix: policy.stat_prefix.clone(),
            shadow_stat_prefix: policy.shadow_stat_prefix.clone(),
            per_rule_stats: policy.per_rule_stats,
        }
    }

    pub fn evaluate(&self, input: &impl AuthzInput) -> Decision<'_> {
        let (allowed, matched) = match &self.enforced {
            Some(rules) => rules.decide(input),
            None => (true, None),
        };
        Decision {
            allowed,
            matched,
            shadow: self.shadow.as_ref().map(|rules| rules.decide(input)),
        }
    }

    /// Envoy's `LOG` action: a match only marks the request for logging.
    pub fn log_only(&self) -> bool {
        self.enforced.as_ref().is_some_and(|r| r.log_only)
    }

    /// Whether the policy has rules that decide (Envoy's `rules`), beside shadow ones.
    pub fn enforces(&self) -> bool {
        self.enforced.is_some()
    }

    pub fn has_shadow(&self) -> bool {
        self.shadow.is_some()
    }

    /// Envoy's `rules_stat_prefix`.
    pub fn stat_prefix(&self) -> &str {
        &self.stat_prefix
    }

    /// Envoy's `shadow_rules_stat_prefix`.
    pub fn shadow_stat_prefix(&self) -> &str {
        &self.shadow_stat_prefix
    }

    /// Envoy's `track_per_rule_stats`.
    pub fn per_rule_stats(&self) -> bool {
        self.per_rule_stats
    }

    /// The enforced rules' names, in order (for stats registered up front).
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.enforced
            .iter()
            .flat_map(|c| c.rules.iter().map(|r| r.name.as_str()))
    }
}

impl Compiled {
    fn new(rules: &Rules) -> Compiled {
        Compiled {
            rules: rules
                .rules
                .iter()
                .map(|r| CompiledRule {
                    name: r.name.clone(),
                    allow: r.decision == RuleDecision::Allow,
                    when: Node::new(&r.when),
                })
                .collect(),
            default_allow: rules.default == RuleDecision::Allow,
            log_only: rules.log_only,
        }
    }

    fn decide(&self, input: &impl AuthzInput) -> (bool, Option<&str>) {
        for rule in &self.rules {
            if rule.when.holds(input) {
                return (rule.allow, Some(&rule.name));
            }
        }
        (self.default_allow, None)
    }
}

/// A compiled condition.
#[derive(Debug)]
enum Node {
    Any(Vec<Node>),
    All(Vec<Node>),
    Not(Box<Node>),
    Always,
    Peer {
        field: PeerField,
        matcher: Matcher,
        /// The matcher for DNS names where they compare without case (native tests).
        dns: Option<Matcher>,
    },
    Authenticated,
    Claim {
        source: ClaimSource,
        test: Test,
    },
    Consumer(Vec<String>),
    ConsumerMetadata(Vec<(String, String)>),
    Source {
        direct: bool,
        cidrs: Vec<Cidr>,
    },
    DestinationIp(Vec<Cidr>),
    DestinationPort {
        start: u32,
        end: u32,
    },
    Method(Vec<Box<[u8]>>),
    Path(Matcher),
    Header {
        name: String,
        /// `None`: a presence test (`present`).
        matcher: Option<Matcher>,
        present: bool,
        invert: bool,
        missing_as_empty: bool,
    },
    ServerName(Matcher),
}

impl Node {
    fn new(condition: &Condition) -> Node {
        match condition {
            Condition::Any(items) => Node::Any(items.iter().map(Node::new).collect()),
            Condition::All(items) => Node::All(items.iter().map(Node::new).collect()),
            Condition::Not(inner) => Node::Not(Box::new(Node::new(inner))),
            Condition::Always => Node::Always,
            Condition::Peer { field, matcher } => {
                let compiled = Matcher::new(matcher);
                let dns = match field {
                    // DNS names are case-insensitive; Envoy's principal_name compares
                    // as configured.
                    PeerField::Dns | PeerField::UriOrDns
                        if !matcher.ignore_case && !matches!(matcher.kind, MatchKind::Regex(_)) =>
                    {
                        Some(Matcher::new(&StrMatch {
                            kind: matcher.kind.clone(),
                            ignore_case: true,
                        }))
                    }
                    _ => None,
                };
                Node::Peer {
                    field: *field,
                    matcher: compiled,
                    dns,
                }
            }
            Condition::Authenticated => Node::Authenticated,
            Condition::Claim { source, test } => Node::Claim {
                source: source.clone(),
                test: Test::new(test),
            },
            Condition::Consumer(names) => Node::Consumer(names.clone()),
            Condition::ConsumerMetadata(pairs) => Node::ConsumerMetadata(pairs.clone()),
            Condition::Source { kind, cidrs } => Node::Source {
                direct: *kind == SourceKind::Direct,
                cidrs: cidrs.clone(),
            },
            Condition::DestinationIp(cidrs) => Node::DestinationIp(cidrs.clone()),
            Condition::DestinationPort { start, end } => Node::DestinationPort {
                start: *start,
                end: *end,
            },
            Condition::Method(methods) => Node::Method(
                methods
                    .iter()
                    .map(|m| m.as_bytes().to_vec().into_boxed_slice())
                    .collect(),
            ),
            Condition::Path(m) => Node::Path(Matcher::new(m)),
            Condition::Header(h) => header(h),
            Condition::ServerName(m) => Node::ServerName(Matcher::new(m)),
        }
    }

    fn holds(&self, input: &impl AuthzInput) -> bool {
        match self {
            Node::Any(items) => items.iter().any(|n| n.holds(input)),
            Node::All(items) => items.iter().all(|n| n.holds(input)),
            Node::Not(inner) => !inner.holds(input),
            Node::Always => true,
            Node::Peer {
                field,
                matcher,
                dns,
            } => input
                .peer()
                .is_some_and(|p| peer_matches(p, *field, matcher, dns.as_ref())),
            Node::Authenticated => input.peer().is_some(),
            Node::Claim { source, test } => {
                let value = match source {
                    ClaimSource::Jwt(path) => input.claim(path),
                    ClaimSource::Payload { key, path } => input
                        .jwt_payload(key)
                        .and_then(|v| path.iter().try_fold(v, |v, k| v.get(k.as_str()))),
                };
                value.is_some_and(|v| test.passes(v))
            }
            Node::Consumer(names) => input.consumer().is_some_and(|c| names.contains(&c.name)),
            Node::ConsumerMetadata(pairs) => input.consumer().is_some_and(|c| {
                pairs
                    .iter()
                    .all(|(k, v)| c.metadata.iter().any(|(ck, cv)| ck == k && cv == v))
            }),
            Node::Source { direct, cidrs } => {
                let ip = if *direct {
                    input.direct_remote_ip()
                } else {
                    input.remote_ip()
                };
                ip.is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip)))
            }
            Node::DestinationIp(cidrs) => input
                .destination_ip()
                .is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip))),
            Node::DestinationPort { start, end } => input
                .destination_port()
                .is_some_and(|p| (*start..*end).contains(&u32::from(p))),
            Node::Method(methods) => {
                let method = input.method();
                methods.iter().any(|m| **m == *method)
            }
            Node::Path(m) => m.matches(input.path()),
            Node::Header {
                name,
                matcher,
                present,
                invert,
                missing_as_empty,
            } => {
                let value = match input.header(name) {
                    Some(v) => v,
                    None if *missing_as_empty => b"",
                    // Envoy's rule: an absent header passes only a presence test
                    // that wants it absent (or an inverted one that wants it present).
                    None => return matcher.is_none() && (*present == *invert),
                };
                let matched = match matcher {
                    Some(m) => m.matches(value),
                    None => *present,
                };
                matched != *invert
            }
            Node::ServerName(m) => input.server_name().is_some_and(|n| m.matches(n)),
        }
    }
}

fn header(h: &HeaderTest) -> Node {
    let (matcher, present) = match &h.value {
        HeaderValue::Present(p) => (None, *p),
        HeaderValue::Matches(m) => (Some(Matcher::new(m)), true),
    };
    Node::Header {
        name: h.name.clone(),
        matcher,
        present,
        invert: h.invert,
        missing_as_empty: h.treat_missing_as_empty,
    }
}

fn peer_matches(
    peer: &PeerIdentity,
    field: PeerField,
    matcher: &Matcher,
    dns: Option<&Matcher>,
) -> bool {
    let dns_matcher = dns.unwrap_or(matcher);
    let uri = || peer.uris.iter().any(|u| matcher.matches(u.as_bytes()));
    let dns = || peer.dns.iter().any(|d| dns_matcher.matches(d.as_bytes()));
    match field {
        PeerField::Uri => uri(),
        PeerField::Dns => dns(),
        PeerField::UriOrDns => uri() || dns(),
        PeerField::Subject => matcher.matches(peer.subject.as_bytes()),
        PeerField::Principal => uri() || dns() || matcher.matches(peer.subject.as_bytes()),
    }
}

/// A compiled string test over bytes. Case-insensitive forms hold the pattern in lower
/// case and compare with `eq_ignore_ascii_case`.
#[derive(Debug)]
enum Matcher {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    Contains(Box<[u8]>),
    ExactNoCase(Box<[u8]>),
    PrefixNoCase(Box<[u8]>),
    SuffixNoCase(Box<[u8]>),
    ContainsNoCase(Box<[u8]>),
    Regex(Regex),
    Never,
}

impl Matcher {
    fn new(m: &StrMatch) -> Matcher {
        let bytes = |text: &str| -> Box<[u8]> {
            if m.ignore_case {
                text.to_ascii_lowercase().into_bytes().into_boxed_slice()
            } else {
                text.as_bytes().into()
            }
        };
        match (&m.kind, m.ignore_case) {
            (MatchKind::Exact(t), false) => Matcher::Exact(bytes(t)),
            (MatchKind::Prefix(t), false) => Matcher::Prefix(bytes(t)),
            (MatchKind::Suffix(t), false) => Matcher::Suffix(bytes(t)),
            (MatchKind::Contains(t), false) => Matcher::Contains(bytes(t)),
            (MatchKind::Exact(t), true) => Matcher::ExactNoCase(bytes(t)),
            (MatchKind::Prefix(t), true) => Matcher::PrefixNoCase(bytes(t)),
            (MatchKind::Suffix(t), true) => Matcher::SuffixNoCase(bytes(t)),
            (MatchKind::Contains(t), true) => Matcher::ContainsNoCase(bytes(t)),
            (MatchKind::Regex(pattern), _) => crate::config::pattern::anchored_regex(pattern)
                .map_or(Matcher::Never, Matcher::Regex),
        }
    }

    fn matches(&self, v: &[u8]) -> bool {
        match self {
            Matcher::Exact(p) => v == &**p,
            Matcher::Prefix(p) => v.starts_with(p),
            Matcher::Suffix(p) => v.ends_with(p),
            Matcher::Contains(p) => p.is_empty() || v.windows(p.len()).any(|w| w == &**p),
            Matcher::ExactNoCase(p) => v.eq_ignore_ascii_case(p),
            Matcher::PrefixNoCase(p) => v
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
            Matcher::SuffixNoCase(p) => v
                .len()
                .checked_sub(p.len())
                .and_then(|start| v.get(start..))
                .is_some_and(|tail| tail.eq_ignore_ascii_case(p)),
            Matcher::ContainsNoCase(p) => {
                p.is_empty() || v.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p))
            }
            Matcher::Regex(re) => re.is_match(v),
            Matcher::Never => false,
        }
    }

    fn exact_text(&self) -> Option<&[u8]> {
        match self {
            Matcher::Exact(p) | Matcher::ExactNoCase(p) => Some(p),
            _ => None,
        }
    }
}

/// A compiled claim test.
#[derive(Debug)]
enum Test {
    Present,
    Text(Matcher),
    AnyOf(Vec<Matcher>),
    /// Each scope, with a finder (SIMD substring search) compiled once.
    Scopes(Vec<(String, memchr::memmem::Finder<'static>)>),
    String(Matcher),
    Bool(bool),
    Number(f64),
    NumberRange(f64, f64),
    Null,
    List(Box<Test>),
    Or(Vec<Test>),
}

impl Test {
    fn new(test: &ClaimTest) -> Test {
        match test {
            ClaimTest::Present => Test::Present,
            ClaimTest::Text(m) => Test::Text(Matcher::new(m)),
            ClaimTest::AnyOf(values) => Test::AnyOf(
                values
                    .iter()
                    .map(|v| Matcher::new(&StrMatch::exact(v.as_str())))
                    .collect(),
            ),
            ClaimTest::Scopes(scopes) => Test::Scopes(
                scopes
                    .iter()
                    .map(|s| {
                        (
                            s.clone(),
                            memchr::memmem::Finder::new(s.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
            ),
            ClaimTest::String(m) => Test::String(Matcher::new(m)),
            ClaimTest::Bool(b) => Test::Bool(*b),
            ClaimTest::Number(n) => Test::Number(*n),
            ClaimTest::NumberRange { start, end } => Test::NumberRange(*start, *end),
            ClaimTest::Null => Test::Null,
            ClaimTest::List(inner) => Test::List(Box::new(Test::new(inner))),
            ClaimTest::Or(tests) => Test::Or(tests.iter().map(Test::new).collect()),
        }
    }

    fn passes(&self, value: &Value) -> bool {
        match self {
            Test::Present => true,
            Test::Text(m) => text_passes(m, value),
            Test::AnyOf(ms) => ms.iter().any(|m| text_passes(m, value)),
            Test::Scopes(scopes) => match value {
                // Each scope found as a space-delimited word by a substring search,
                // not by splitting the claim into words on every request.
                Value::String(s) => scopes
                    .iter()
                    .all(|(want, finder)| has_word(s.as_bytes(), want.len(), finder)),
                Value::Array(items) => scopes
                    .iter()
                    .all(|(want, _)| items.iter().any(|i| i.as_str() == Some(want.as_str()))),
                _ => false,
            },
            Test::String(m) => value.as_str().is_some_and(|s| m.matches(s.as_bytes())),
            Test::Bool(b) => value.as_bool() == Some(*b),
            Test::Number(n) => value.as_f64() == Some(*n),
            Test::NumberRange(start, end) => {
                value.as_f64().is_some_and(|v| *start <= v && v < *end)
            }
            Test::Null => value.is_null(),
            Test::List(inner) => value
                .as_array()
                .is_some_and(|items| items.iter().any(|i| inner.passes(i))),
            Test::Or(tests) => tests.iter().any(|t| t.passes(value)),
        }
    }
}

/// Whether `text` holds the word `finder` looks for (of `len` bytes), delimited by
/// spaces or the ends (RFC 8693's space-separated `scope`).
fn has_word(text: &[u8], len: usize, finder: &memchr::memmem::Finder<'_>) -> bool {
    finder.find_iter(text).any(|at| {
        let end = at + len;
        (at == 0 || text[at - 1] == b' ') && (end == text.len() || text[end] == b' ')
    })
}

/// The native string tests: a string, an array's string elements, and for `exact`
/// a number or boolean with that text.
fn text_passes(m: &Matcher, value: &Value) -> bool {
    match value {
        Value::String(s) => m.matches(s.as_bytes()),
        Value::Array(items) => items.iter().any(|i| match i {
            Value::Array(_) => false,
            scalar => text_passes(m, scalar),
        }),
        Value::Bool(b) => m
            .exact_text()
            .is_some_and(|t| t == if *b { &b"true"[..] } else { &b"false"[..] }),
        Value::Number(n) => m.exact_text().is_some_and(|t| number_is(n, t)),
        Value::Null | Value::Object(_) => false,
    }
}

/// Whether a JSON number equals the number written as `text` (no allocation: the text
/// is parsed, not the number printed).
fn number_is(n: &serde_json::Number, text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    if let (Some(a), Ok(b)) = (n.as_i64(), text.parse::<i64>()) {
        return a == b;
    }
    if let (Some(a), Ok(b)) = (n.as_u64(), text.parse::<u64>()) {
        return a == b;
    }
    match (n.as_f64(), text.parse::<f64>()) {
        (Some(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
