//! Authorization policies: who may call a route, decided from the request's identity
//! (mTLS peer, JWT claims, consumer), its addresses and its head.
//!
//! Design: one model for both config formats. A policy is an ordered list of rules,
//! each an `allow` or `deny` decision guarded by a [`Condition`] tree; the first rule
//! whose condition holds decides, else the policy's default does. Envoy's `rbac` filter
//! maps onto this without loss for the subset ringway implements: an `ALLOW` action is
//! one allow rule per policy and a default of deny, `DENY` one deny rule per policy and
//! a default of allow, `LOG` allow rules with a default of allow (a match is only
//! noted); each Envoy policy is `all(any(permissions), any(principals))`. Shadow rules
//! are decided and counted but never enforced (Envoy's `shadow_rules`, the native
//! `shadow: true`), so a policy can be rolled out safely.
//!
//! Values are checked when the config is read (regexes compile, CIDRs parse); the
//! engine (`auth::policy`) compiles them once per snapshot and evaluates without
//! allocating.

use super::model::Cidr;

/// An access policy on a route or listener.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthzPolicy {
    /// Rules that decide (Envoy's `rules`); `None`: every request is allowed.
    pub enforced: Option<Rules>,
    /// Rules that are only decided and counted (Envoy's `shadow_rules`, native
    /// `shadow: true`).
    pub shadow: Option<Rules>,
    /// Stats of the enforced rules go under `<prefix>rbac.` (Envoy's
    /// `rules_stat_prefix`; empty by default).
    pub stat_prefix: String,
    /// Stats of the shadow rules go under `<prefix>rbac.` too (Envoy's
    /// `shadow_rules_stat_prefix`).
    pub shadow_stat_prefix: String,
    /// Count matches per rule (Envoy's `track_per_rule_stats`).
    pub per_rule_stats: bool,
}

/// What one route does about authorization, replacing the listener's policy.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAuthz {
    /// No policy on this route (Envoy's `RBACPerRoute` without `rbac`; native
    /// `authorization: none`).
    Disabled,
    /// This policy instead of the listener's.
    Policy(AuthzPolicy),
}

/// An ordered rule list: the first rule whose condition holds decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub rules: Vec<Rule>,
    /// The decision when no rule matches.
    pub default: Decision,
    /// Envoy's `LOG` action: rules only note a match (they are all `Allow`, and so is
    /// the default); the matched name is what gets logged.
    pub log_only: bool,
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// For logs and stats: the native `name` (else `rules[i]`), Envoy's policy name.
    pub name: String,
    pub decision: Decision,
    pub when: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// A test on a request: combinators and leaves.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Holds when one holds (false when empty).
    Any(Vec<Condition>),
    /// Holds when all hold (true when empty).
    All(Vec<Condition>),
    Not(Box<Condition>),
    /// Always holds (Envoy's `any: true`).
    Always,
    /// The client certificate: some name of `field` matches. No certificate: false.
    Peer {
        field: PeerField,
        matcher: StrMatch,
    },
    /// A client certificate was presented and verified (Envoy's `authenticated`
    /// without `principal_name`).
    Authenticated,
    /// A JWT claim (or a part of an Envoy `jwt_authn` payload) passes `test`.
    Claim {
        source: ClaimSource,
        test: ClaimTest,
    },
    /// The request's consumer (API key owner) is one of these.
    Consumer(Vec<String>),
    /// The consumer's metadata has every one of these `key = value` pairs.
    ConsumerMetadata(Vec<(String, String)>),
    /// The client's address is in one of the networks.
    Source {
        kind: SourceKind,
        cidrs: Vec<Cidr>,
    },
    /// The local address the request came in on (Envoy's `destination_ip`).
    DestinationIp(Vec<Cidr>),
    /// The local port, in `[start, end)` (a single port is `[p, p + 1)`).
    DestinationPort {
        start: u32,
        end: u32,
    },
    /// The method is one of these (exact, case-sensitive).
    Method(Vec<String>),
    /// The request path, without its query.
    Path(StrMatch),
    Header(HeaderTest),
    /// The TLS server name the client asked for (SNI).
    ServerName(StrMatch),
}

/// Which names of the client certificate a [`Condition::Peer`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerField {
    /// URI subject alt names (SPIFFE IDs).
    Uri,
    /// DNS subject alt names.
    Dns,
    /// URI and DNS subject alt names.
    UriOrDns,
    /// The subject (`CN=a,O=b`).
    Subject,
    /// Envoy's `authenticated.principal_name`: any URI SAN, else any DNS SAN, else the
    /// subject.
    Principal,
}

/// Which client address a [`Condition::Source`] tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The client as the listener's trusted-proxy settings decide it (after
    /// `x-forwarded-for`; Envoy's `remote_ip`).
    Remote,
    /// The TCP peer (Envoy's `direct_remote_ip`, and the deprecated `source_ip`).
    Direct,
}

/// Where a claim is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSource {
    /// A claim by dotted path (`realm_access.roles`), in the first verified token that
    /// has it (native `claim`).
    Jwt(String),
    /// Envoy's metadata matcher on `envoy.filters.http.jwt_authn`: the payload stored
    /// under a provider's `payload_in_metadata` name, then object keys into it (none:
    /// the payload itself).
    Payload { key: String, path: Vec<String> },
}

/// What a claim's value must be.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimTest {
    /// The claim exists (any value).
    Present,
    /// Native string tests: a string claim that matches, or an array claim with a
    /// string element that does; `Exact` also matches a number or boolean written the
    /// same way (`42`, `true`).
    Text(StrMatch),
    /// Native `any_of`: [`ClaimTest::Text`] with `Exact` for one of these.
    AnyOf(Vec<String>),
    /// Native `has` (RFC 8693 `scope`): the claim, a space-separated string or an array
    /// of strings, contains every one of these.
    Scopes(Vec<String>),
    /// Envoy's `string_match`: a string value that matches (arrays do not).
    String(StrMatch),
    /// Envoy's `bool_match`.
    Bool(bool),
    /// Envoy's `double_match` with `exact`.
    Number(f64),
    /// Envoy's `double_match` with `range`: `[start, end)`.
    NumberRange { start: f64, end: f64 },
    /// Envoy's `null_match`.
    Null,
    /// Envoy's `list_match`: an array with an element passing the test.
    List(Box<ClaimTest>),
    /// Envoy's `or_match`.
    Or(Vec<ClaimTest>),
}

/// A string test (Envoy's `StringMatcher`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrMatch {
    pub kind: MatchKind,
    /// ASCII case is ignored (not for `Regex`, which has `(?i)` for that).
    pub ignore_case: bool,
}

impl StrMatch {
    pub fn exact(text: impl Into<String>) -> Self {
        StrMatch {
            kind: MatchKind::Exact(text.into()),
            ignore_case: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchKind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    /// Anchored to the whole value; checked to compile when the config is read.
    Regex(String),
}

/// A header test (Envoy's `HeaderMatcher`, with its rules for absent headers: a value
/// test never matches an absent header, even inverted, unless
/// `treat_missing_as_empty`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTest {
    /// Lower case; pseudo-headers (`:method`, `:path`, `:authority`) as Envoy names them.
    pub name: String,
    pub value: HeaderValue,
    pub invert: bool,
    pub treat_missing_as_empty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// `true`: present; `false`: absent.
    Present(bool),
    Matches(StrMatch),
}
