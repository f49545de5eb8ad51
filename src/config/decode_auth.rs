//! Native authentication settings: the top-level `auth` (JWT providers, API keys and
//! their consumers) and what listeners and routes require (`auth: main`,
//! `auth: { any: [main, api_key] }`, `auth: none`).
//!
//! ```yaml
//! auth:
//!   jwt_providers:
//!     - name: main
//!       issuer: https://id.example.com
//!       jwks: { url: https://id.example.com/.well-known/jwks.json }
//!   api_keys:
//!     consumers:
//!       - { name: acme, key_sha256: ["<64 hex digits>"], metadata: { plan: gold } }
//! listeners:
//!   - name: api
//!     auth: main                  # the routes without their own `auth`
//!     routes:
//!       - match: { prefix: /public }
//!         auth: none
//! ```
//!
//! Design: the top-level `auth` is decoded before the listeners, and the names it
//! declares are left in [`Marks::auth`], so a route's requirement is resolved where it
//! is written: an unknown provider is reported at the route's `auth`, with a
//! did-you-mean, and `jwt` becomes the name of the one JWT provider. Key material is
//! checked at load: inline and file JWKS must parse (`auth::jwt::Jwks::parse`), remote
//! URLs must be `http`/`https` with a host, and a `cluster` must exist (checked with the
//! routes' clusters in `validate`). API keys are stored as SHA-256 digests only: a
//! plaintext `keys` entry is digested here, and no error message repeats a key.
//! The consumers `file` has the shape of the `consumers:` list and is decoded by
//! [`load_consumers`], which the reload of that file uses too.
//!
//! Requirement words: `jwt` (the only JWT provider), `api_key`, `none` (a route's: no
//! authentication; a listener's: nothing by default), and inside `any` only,
//! `allow_missing` and `allow_missing_or_failed` (Envoy's meaning). A name of a
//! provider may not be one of these words.

use std::path::Path;
use std::time::Duration;

use super::auth::{
    ApiKeys, AuthConfig, AuthRule, ClaimToHeader, Consumer, JwksSource, JwtProvider, ListenerAuth,
    RemoteJwks, Requirement, RouteAuth, TokenSource,
};
use super::decode_headers::check_field_name;
use super::error::{ConfigErrors, Diagnostics};
use super::fields::{
    exactly_one, list, name, non_empty_list, optional_bool, optional_duration, AuthMarks, Marks,
};
use super::model::{Route, RouteConditions, RouteMatch, VirtualHost};
use super::node::{Map, Node};
use super::suggest;
use super::units::parse_duration;

const AUTH_KEYS: &[&str] = &["bypass_cors_preflight", "jwt_providers", "api_keys"];
const PROVIDER_KEYS: &[&str] = &[
    "name",
    "issuer",
    "audiences",
    "jwks",
    "from",
    "forward",
    "forward_payload_header",
    "pad_forward_payload_header",
    "claim_to_headers",
    "clock_skew",
    "require_expiration",
    "max_lifetime",
    "required_claims",
    "cache_size",
];
const JWKS_KEYS: &[&str] = &[
    "inline",
    "file",
    "url",
    "cluster",
    "timeout",
    "cache_duration",
    "failed_refetch",
    "refetch_unknown_kid",
    "wait_for_keys",
    "retries",
];
/// The `jwks` keys that only a `url` takes.
const REMOTE_ONLY_KEYS: &[&str] = &[
    "cluster",
    "timeout",
    "cache_duration",
    "failed_refetch",
    "refetch_unknown_kid",
    "wait_for_keys",
    "retries",
];
const SOURCE_KEYS: &[&str] = &["header", "prefix", "query", "cookie"];
const API_KEYS_KEYS: &[&str] = &["from", "forward", "consumers", "file"];
const CONSUMER_KEYS: &[&str] = &["name", "keys", "key_sha256", "metadata"];
const CONSUMERS_FILE_KEYS: &[&str] = &["consumers"];
const REQUIREMENT_KEYS: &[&str] = &["provider", "audiences", "any", "all"];

/// The words of requirements, which no provider may be named.
const WORDS: &[&str] = &[
    "jwt",
    "api_key",
    "none",
    "allow_missing",
    "allow_missing_or_failed",
];

/// The largest verified-token cache per core a provider may ask for.
const MAX_CACHE_SIZE: i64 = 1_000_000;
/// Attempts per JWKS fetch beyond the first.
const MAX_RETRIES: i64 = 100;
/// The largest JWKS file read (a key set is a few KiB).
const MAX_JWKS_FILE: u64 = 1 << 20;
/// The largest consumers file read.
const MAX_CONSUMERS_FILE: u64 = 64 << 20;

/// Decodes the top-level `auth` and leaves its names in `marks.auth` for the routes.
pub(super) fn auth<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<AuthConfig> {
    marks.auth = None;
    let map = node.map(diag, AUTH_KEYS)?;
    let bypass_cors_preflight = optional_bool(&map, "bypass_cors_preflight", true, diag);
    let mut names: Vec<(&'a str, Node<'a>)> = Vec::new();
    let (providers, listed) = match map.optional("jwt_providers") {
        Some(n) => {
            let listed = n.seq(&mut scratch()).is_some();
            let providers = list(&n, diag, |item, diag| {
                provider(item, diag, marks, &mut names)
            });
            (providers, listed)
        }
        None => (Some(Vec::new()), true),
    };
    let unique = unique(&names, "JWT provider name", diag);
    let api_keys = match map.optional("api_keys") {
        Some(n) => api_keys(&n, diag, &marks.base_dir).map(Some),
        None => Some(None),
    };
    if listed {
        marks.auth = Some(AuthMarks {
            jwt_providers: names.iter().map(|(n, _)| (*n).to_owned()).collect(),
            api_keys: map.has("api_keys"),
            bypass_cors_preflight: bypass_cors_preflight.unwrap_or(true),
        });
    }
    bypass_cors_preflight?;
    unique.then_some(())?;
    Some(AuthConfig {
        jwt_providers: providers?,
        api_keys: api_keys?,
    })
}

/// What `marks.auth` holds for a file without a top-level `auth`.
pub(super) fn no_auth() -> AuthMarks {
    AuthMarks {
        jwt_providers: Vec::new(),
        api_keys: false,
        bypass_cors_preflight: true,
    }
}

/// Reports every repeat of a name at the repeat; whether there was none.
fn unique(names: &[(&str, Node<'_>)], what: &str, diag: &mut Diagnostics) -> bool {
    let mut ok = true;
    for (i, (name, node)) in names.iter().enumerate() {
        if let Some((_, first)) = names.iter().take(i).find(|(n, _)| n == name) {
            node.error(
                diag,
                format!(
                    "duplicate {what} {name:?} (first defined at {}: {})",
                    first.pos(),
                    first.path()
                ),
            );
            ok = false;
        }
    }
    ok
}

fn provider<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
    names: &mut Vec<(&'a str, Node<'a>)>,
) -> Option<JwtProvider> {
    let map = node.map(diag, PROVIDER_KEYS)?;
    let provider_name = map.field(diag, "name").and_then(|n| {
        let text = name(&n, diag)?;
        if WORDS.contains(&text) {
            n.error(
                diag,
                format!("`{text}` is a word of `auth` requirements; name the provider otherwise"),
            );
            return None;
        }
        names.push((text, n));
        Some(text)
    });
    let issuer = match map.optional("issuer") {
        Some(n) => text(&n, diag).map(|t| Some(t.to_owned())),
        None => Some(None),
    };
    let audiences = strings(&map, "audiences", diag);
    let jwks = map.field(diag, "jwks").and_then(|n| jwks(&n, diag, marks));
    let from = match map.optional("from") {
        Some(n) => sources(&n, diag),
        None => Some(vec![
            TokenSource::Header {
                name: "authorization".to_owned(),
                prefix: "Bearer ".to_owned(),
            },
            TokenSource::Query("access_token".to_owned()),
        ]),
    };
    let forward = optional_bool(&map, "forward", false, diag);
    let forward_payload_header = match map.optional("forward_payload_header") {
        Some(n) => header_name(&n, diag).map(Some),
        None => Some(None),
    };
    let pad_forward_payload_header = optional_bool(&map, "pad_forward_payload_header", false, diag);
    if let (Some(true), Some(n), false) = (
        pad_forward_payload_header,
        map.optional("pad_forward_payload_header"),
        map.has("forward_payload_header"),
    ) {
        n.error(
            diag,
            "`pad_forward_payload_header` applies with `forward_payload_header`",
        );
    }
    let claim_to_headers = match map.optional("claim_to_headers") {
        Some(n) => claim_to_headers(&n, diag),
        None => Some(Vec::new()),
    };
    let clock_skew = match map.optional("clock_skew") {
        Some(n) => duration_or_zero(&n, diag),
        None => Some(JwtProvider::DEFAULT_CLOCK_SKEW),
    };
    let require_expiration = optional_bool(&map, "require_expiration", false, diag);
    let max_lifetime = match map.optional("max_lifetime") {
        Some(n) => super::fields::duration(&n, diag).map(Some),
        None => Some(None),
    };
    let required_claims = match map.optional("required_claims") {
        Some(n) => list(&n, diag, claim_path),
        None => Some(Vec::new()),
    };
    let cache_size = match map.optional("cache_size") {
        Some(n) => n
            .int_in(diag, "a number of tokens", 1..=MAX_CACHE_SIZE)
            .and_then(|n| usize::try_from(n).ok()),
        None => Some(JwtProvider::DEFAULT_CACHE_SIZE),
    };
    Some(JwtProvider {
        name: provider_name?.to_owned(),
        issuer: issuer?,
        audiences: audiences?,
        jwks: jwks?,
        from: from?,
        forward: forward?,
        forward_payload_header: forward_payload_header?,
        pad_forward_payload_header: pad_forward_payload_header?,
        claim_to_headers: claim_to_headers?,
        clock_skew: clock_skew?,
        require_expiration: require_expiration?,
        max_lifetime: max_lifetime?,
        required_claims: required_claims?,
        cache_size: cache_size?,
        payload_in_metadata: None,
    })
}

/// A non-empty string.
fn text<'a>(node: &Node<'a>, diag: &mut Diagnostics) -> Option<&'a str> {
    let text = node.str(diag)?;
    if text.is_empty() {
        node.error(diag, "expected a non-empty string");
        return None;
    }
    Some(text)
}

/// An optional list of non-empty strings (empty when absent).
fn strings(map: &Map<'_>, key: &str, diag: &mut Diagnostics) -> Option<Vec<String>> {
    match map.optional(key) {
        Some(n) => list(&n, diag, |item, diag| text(item, diag).map(str::to_owned)),
        None => Some(Vec::new()),
    }
}

/// A header name, lower-cased (one ringway may add or remove).
fn header_name(node: &Node<'_>, diag: &mut Diagnostics) -> Option<String> {
    let text = node.str(diag)?;
    match check_field_name(text) {
        Ok(()) => Some(text.to_ascii_lowercase()),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

/// A duration that may be zero (`clock_skew: 0s`, `refetch_unknown_kid: 0s`).
fn duration_or_zero(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Duration> {
    let text = node.scalar_text(diag, "a duration such as `60s`")?;
    match parse_duration(&text) {
        Ok(d) => Some(d),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

/// A claim name or dotted path (`org.id`).
fn claim_path(node: &Node<'_>, diag: &mut Diagnostics) -> Option<String> {
    let text = node.str(diag)?;
    if text.is_empty() || text.split('.').any(str::is_empty) {
        node.error(
            diag,
            format!("{text:?} is not a claim: a name, or a dotted path such as `org.id`"),
        );
        return None;
    }
    Some(text.to_owned())
}

/// `claim_to_headers`: a mapping of header names to claims.
fn claim_to_headers(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<ClaimToHeader>> {
    let entries = node.entries(diag)?;
    let mut result = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (key, key_node, value) in entries {
        let header = match check_field_name(key) {
            Ok(()) => Some(key.to_ascii_lowercase()),
            Err(message) => {
                key_node.error(diag, message);
                None
            }
        };
        let claim = claim_path(&value, diag);
        match (header, claim) {
            (Some(header), Some(claim)) => {
                if result.iter().any(|c: &ClaimToHeader| c.header == header) {
                    key_node.error(diag, format!("header {header:?} is given twice"));
                    ok = false;
                }
                result.push(ClaimToHeader { claim, header });
            }
            _ => ok = false,
        }
    }
    ok.then_some(result)
}

/// Where a provider's keys come from: exactly one of `inline`, `file`, `url`.
fn jwks<'a>(node: &Node<'a>, diag: &mut Diagnostics, marks: &mut Marks<'a>) -> Option<JwksSource> {
    let map = node.map(diag, JWKS_KEYS)?;
    let given: Vec<_> = ["inline", "file", "url"]
        .into_iter()
        .filter_map(|key| map.optional(key).map(|n| (key, n)))
        .collect();
    let (kind, n) = match given.as_slice() {
        [one] => one.clone(),
        [] => {
            map.error(diag, "`jwks` needs one of `inline`, `file` or `url`");
            return None;
        }
        [_, (_, second), ..] => {
            second.error(diag, "`jwks` has exactly one of `inline`, `file` or `url`");
            return None;
        }
    };
    if kind == "url" {
        return remote(&map, &n, diag, marks).map(JwksSource::Remote);
    }
    let mut ok = true;
    for key in REMOTE_ONLY_KEYS {
        if let Some(k) = map.optional(key) {
            k.error(
                diag,
                format!("`{key}` applies to keys fetched from a `url`"),
            );
            ok = false;
        }
    }
    let source = if kind == "inline" {
        let text = n.str(diag)?;
        check_jwks(&n, text, diag)?;
        JwksSource::Inline(text.to_owned())
    } else {
        let file = n.str(diag)?;
        let path = marks.base_dir.join(file);
        let text = match read_file(&path, MAX_JWKS_FILE) {
            Ok(text) => text,
            Err(message) => {
                n.error(diag, message);
                return None;
            }
        };
        check_jwks(&n, &text, diag)?;
        JwksSource::File { path, text }
    };
    ok.then_some(source)
}

fn check_jwks(node: &Node<'_>, text: &str, diag: &mut Diagnostics) -> Option<()> {
    match crate::auth::jwt::Jwks::parse(text) {
        Ok(_) => Some(()),
        Err(message) => {
            node.error(diag, format!("invalid JWKS: {message}"));
            None
        }
    }
}

/// Reads a regular file of UTF-8 text, at most `limit` bytes (a device or FIFO would
/// stall the load).
pub(crate) fn read_file(path: &Path, limit: u64) -> Result<String, String> {
    use std::io::Read as _;
    let shown = path.display();
    let read = std::fs::metadata(path).and_then(|meta| {
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(limit + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    });
    match read {
        Ok(bytes) if bytes.len() as u64 > limit => {
            Err(format!("cannot read {shown}: over {limit} bytes"))
        }
        Ok(bytes) => {
            String::from_utf8(bytes).map_err(|_| format!("cannot read {shown}: not UTF-8 text"))
        }
        Err(e) => Err(format!("cannot read {shown}: {e}")),
    }
}

fn remote<'a>(
    map: &Map<'a>,
    url: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<RemoteJwks> {
    let url = url.parse_str(diag, |text| check_url(text).map(|()| text.to_owned()));
    let cluster = match map.optional("cluster") {
        Some(n) => n.str(diag).map(|name| {
            // Existence is checked with the routes' clusters (validate).
            marks.cluster_refs.push((name, n.clone()));
            Some(name.to_owned())
        }),
        None => Some(None),
    };
    let timeout = optional_duration(map, "timeout", RemoteJwks::DEFAULT_TIMEOUT, diag);
    let cache_duration = optional_duration(
        map,
        "cache_duration",
        RemoteJwks::DEFAULT_CACHE_DURATION,
        diag,
    );
    let failed_refetch = optional_duration(
        map,
        "failed_refetch",
        RemoteJwks::DEFAULT_FAILED_REFETCH,
        diag,
    );
    let unknown_kid_refetch = match map.optional("refetch_unknown_kid") {
        Some(n) => duration_or_zero(&n, diag),
        None => Some(RemoteJwks::DEFAULT_UNKNOWN_KID_REFETCH),
    };
    let wait_for_keys = optional_bool(map, "wait_for_keys", false, diag);
    let retries = match map.optional("retries") {
        Some(n) => n
            .int_in(diag, "a number of retries", 0..=MAX_RETRIES)
            .and_then(|n| u32::try_from(n).ok()),
        None => Some(0),
    };
    Some(RemoteJwks {
        url: url?,
        cluster: cluster?,
        timeout: timeout?,
        cache_duration: cache_duration?,
        failed_refetch: failed_refetch?,
        fast_listener: !wait_for_keys?,
        retries: retries?,
        unknown_kid_refetch: unknown_kid_refetch?,
        ready_after_failed_fetch: false,
    })
}

/// A JWKS URL: `http://` or `https://`, a host (a name or an IP address, IPv6 in
/// brackets), an optional port, then a path without spaces or control characters.
/// Credentials (`user@`) are refused: they would be sent in the clear in logs.
pub(crate) fn check_url(text: &str) -> Result<(), String> {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    let (rest, port) = if lower.starts_with("https://") {
        (text.get(8..).unwrap_or_default(), 443)
    } else if lower.starts_with("http://") {
        (text.get(7..).unwrap_or_default(), 80)
    } else {
        return Err(format!("{text:?} is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    if authority.contains('@') {
        return Err(format!(
            "{text:?}: credentials in the URL are not supported"
        ));
    }
    super::addr::parse_host_port(authority, Some(port)).map_err(|e| format!("{text:?}: {e}"))?;
    if path.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{text:?} has a space, a control or a non-ASCII character (percent-encode it)"
        ));
    }
    Ok(())
}

/// `from`: where a token or key is looked for, in order.
fn sources(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<TokenSource>> {
    non_empty_list(node, diag, "location", source)
}

fn source(node: &Node<'_>, diag: &mut Diagnostics) -> Option<TokenSource> {
    let map = node.map(diag, SOURCE_KEYS)?;
    let (kind, n) = exactly_one(
        (node, &map),
        (&["header", "query", "cookie"], SOURCE_KEYS),
        diag,
        "a location has exactly one of `header`, `query` or `cookie`",
    )?;
    let (kind, n) = (&kind, &n);
    let prefix = match map.optional("prefix") {
        Some(p) if *kind != "header" => {
            p.error(diag, "`prefix` applies to a `header`");
            None
        }
        Some(p) => p.str(diag).and_then(|text| {
            if text.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
                Some(text.to_owned())
            } else {
                p.error(
                    diag,
                    format!("{text:?} is not a header value prefix (printable ASCII)"),
                );
                None
            }
        }),
        None => Some(String::new()),
    };
    let value = n.str(diag)?;
    match *kind {
        "header" => Some(TokenSource::Header {
            name: header_name(n, diag)?,
            prefix: prefix?,
        }),
        "query" => {
            let ok = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'&' | b'=' | b'#' | b'?'));
            if !ok {
                n.error(
                    diag,
                    format!(
                        "{value:?} is not a query parameter name (printable ASCII without `&`, `=`, `#`, `?`)"
                    ),
                );
                return None;
            }
            Some(TokenSource::Query(value.to_owned()))
        }
        _ => {
            if value.is_empty() || !value.bytes().all(super::fields::token_byte) {
                n.error(
                    diag,
                    format!("{value:?} is not a cookie name (an HTTP token)"),
                );
                return None;
            }
            Some(TokenSource::Cookie(value.to_owned()))
        }
    }
}

fn api_keys(node: &Node<'_>, diag: &mut Diagnostics, base_dir: &Path) -> Option<ApiKeys> {
    let map = node.map(diag, API_KEYS_KEYS)?;
    let from = match map.optional("from") {
        Some(n) => sources(&n, diag),
        None => Some(vec![TokenSource::Header {
            name: "x-api-key".to_owned(),
            prefix: String::new(),
        }]),
    };
    let forward = optional_bool(&map, "forward", false, diag);
    let mut inline_nodes = Vec::new();
    let consumers = match map.optional("consumers") {
        Some(n) => {
            inline_nodes = n.seq(&mut scratch()).unwrap_or_default();
            list(&n, diag, consumer)
        }
        None => Some(Vec::new()),
    };
    let file = match map.optional("file") {
        Some(n) => n.str(diag).and_then(|name| {
            let path = base_dir.join(name);
            match load_consumers_into(&path, diag) {
                Ok(consumers) => Some(Some((path, consumers))),
                Err(message) => {
                    n.error(diag, message);
                    None
                }
            }
        }),
        None => Some(None),
    };
    if !map.has("consumers") && !map.has("file") {
        map.error(
            diag,
            "`api_keys` needs its consumers: `consumers`, or a `file` of them",
        );
        return None;
    }
    let (consumers, file) = (consumers?, file?);
    // Names and keys are unique over the config and the file: a key identifies one
    // consumer.
    let mut ok = true;
    let items: Vec<(&Consumer, Option<&Node<'_>>)> = consumers
        .iter()
        .zip(inline_nodes.iter().map(Some))
        .chain(
            file.iter()
                .flat_map(|(_, consumers)| consumers.iter().map(|c| (c, None))),
        )
        .collect();
    for (i, (c, _)) in items.iter().enumerate() {
        let earlier = items.get(..i).unwrap_or_default();
        if let Some((first, _)) = earlier.iter().find(|(e, _)| e.name == c.name) {
            report_at(
                &items,
                i,
                &map,
                diag,
                format!("duplicate consumer name {:?}", first.name),
            );
            ok = false;
        }
        if let Some((first, _)) = earlier
            .iter()
            .find(|(e, _)| e.key_digests.iter().any(|d| c.key_digests.contains(d)))
        {
            report_at(
                &items,
                i,
                &map,
                diag,
                format!(
                    "consumer {:?} has a key that consumer {:?} has too (a key identifies one consumer)",
                    c.name, first.name
                ),
            );
            ok = false;
        }
    }
    ok.then_some(())?;
    Some(ApiKeys {
        from: from?,
        consumers,
        file,
        forward: forward?,
    })
}

/// Reports at consumer `i`'s node (a consumer of the config) or at `file`.
fn report_at(
    items: &[(&Consumer, Option<&Node<'_>>)],
    i: usize,
    map: &Map<'_>,
    diag: &mut Diagnostics,
    message: String,
) {
    match items.get(i).and_then(|(_, node)| *node) {
        Some(node) => node.error(diag, message),
        None => match map.optional("file") {
            Some(file) => file.error(diag, message),
            None => map.error(diag, message),
        },
    }
}

fn consumer(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Consumer> {
    let map = node.map(diag, CONSUMER_KEYS)?;
    let consumer_name = map.field(diag, "name").and_then(|n| name(&n, diag));
    let keys = match map.optional("keys") {
        Some(n) => list(&n, diag, |item, diag| {
            let key = item.str(diag)?;
            // The key is never repeated in a message.
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                item.error(
                    diag,
                    "a key is printable ASCII without spaces (it is sent in a header or a query)",
                );
                return None;
            }
            sha256(key.as_bytes())
        }),
        None => Some(Vec::new()),
    };
    let digests = match map.optional("key_sha256") {
        Some(n) => list(&n, diag, |item, diag| item.parse_str(diag, hex_digest)),
        None => Some(Vec::new()),
    };
    let metadata = match map.optional("metadata") {
        Some(n) => metadata(&n, diag),
        None => Some(Vec::new()),
    };
    let (mut keys, digests) = (keys?, digests?);
    keys.extend(digests);
    if keys.is_empty() {
        map.error(
            diag,
            "a consumer needs at least one key, in `keys` or `key_sha256`",
        );
        return None;
    }
    let mut unique = Vec::with_capacity(keys.len());
    for key in keys {
        if !unique.contains(&key) {
            unique.push(key);
        }
    }
    Some(Consumer {
        name: consumer_name?.to_owned(),
        key_digests: unique,
        metadata: metadata?,
    })
}

fn sha256(bytes: &[u8]) -> Option<[u8; 32]> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    <[u8; 32]>::try_from(digest.as_ref()).ok()
}

/// 64 hexadecimal digits (either case).
fn hex_digest(text: &str) -> Result<[u8; 32], String> {
    let bytes = text.as_bytes();
    let bad = || {
        format!(
            "expected a SHA-256 digest as 64 hexadecimal digits, found {} characters{}",
            text.chars().count(),
            if text.bytes().all(|b| b.is_ascii_hexdigit()) {
                ""
            } else {
                " with a non-hexadecimal one"
            }
        )
    };
    if bytes.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |b: u8| char::from(b).to_digit(16);
        match pair {
            [hi, lo] => match (digit(*hi), digit(*lo)) {
                (Some(hi), Some(lo)) => *byte = u8::try_from(hi * 16 + lo).unwrap_or(0),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// A consumer's `metadata`: names to scalar values (numbers and booleans as their text).
fn metadata(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<(String, String)>> {
    let entries = node.entries(diag)?;
    let mut result = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (key, key_node, value) in entries {
        if key.is_empty() {
            key_node.error(diag, "a metadata name is not empty");
            ok = false;
            continue;
        }
        let text = match value.peek_bool() {
            Some(b) => Some(b.to_string()),
            None => value.scalar_text(diag, "a string, a number or a boolean"),
        };
        match text {
            Some(text) => result.push((key.to_owned(), text)),
            None => ok = false,
        }
    }
    ok.then_some(result)
}

/// Reads and decodes a consumers file (`consumers: [...]`, the shape of
/// `auth.api_keys.consumers`; digests-only consumers allowed): what the load does, and
/// what a reload of the file does when it changes. Names and keys must be unique.
pub fn load_consumers(path: &Path) -> Result<Vec<Consumer>, ConfigErrors> {
    let mut diag = Diagnostics::new(path);
    match load_consumers_into(path, &mut diag) {
        Ok(consumers) if !diag.has_errors() => Ok(consumers),
        Ok(_) => Err(diag.finish()),
        Err(message) => {
            diag.error(Default::default(), "", message);
            Err(diag.finish())
        }
    }
}

/// The file's consumers, its errors (at their place in the file) added to `diag`; `Err`
/// when it cannot be read.
fn load_consumers_into(path: &Path, diag: &mut Diagnostics) -> Result<Vec<Consumer>, String> {
    let text = read_file(path, MAX_CONSUMERS_FILE)?;
    let mut inner = Diagnostics::new(path);
    let decoded = super::yaml::load(&text, &mut inner).and_then(|tree| {
        let root = Node::root(&tree);
        let map = root.map(&mut inner, CONSUMERS_FILE_KEYS)?;
        let node = map.field(&mut inner, "consumers")?;
        let consumers = list(&node, &mut inner, consumer)?;
        let items = node.seq(&mut inner)?;
        let mut ok = true;
        for (i, (c, at)) in consumers.iter().zip(&items).enumerate() {
            let earlier = consumers.get(..i).unwrap_or_default();
            if earlier.iter().any(|e| e.name == c.name) {
                at.error(&mut inner, format!("duplicate consumer name {:?}", c.name));
                ok = false;
            }
            if let Some(first) = earlier
                .iter()
                .find(|e| e.key_digests.iter().any(|d| c.key_digests.contains(d)))
            {
                at.error(
                    &mut inner,
                    format!(
                        "consumer {:?} has a key that consumer {:?} has too (a key identifies one consumer)",
                        c.name, first.name
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(consumers)
    });
    let failed = inner.has_errors();
    diag.absorb(inner);
    match decoded {
        Some(consumers) if !failed => Ok(consumers),
        // The errors are in `diag`, at their place in the file.
        _ if failed => Ok(Vec::new()),
        _ => Err(format!("cannot decode {}", path.display())),
    }
}

/// Where a requirement is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Listener,
    Route,
    Any,
    All,
}

/// A route's `auth` (`Some(None)` when absent).
pub(super) fn route_auth(
    map: &Map<'_>,
    diag: &mut Diagnostics,
    marks: &Marks<'_>,
) -> Option<Option<RouteAuth>> {
    let Some(node) = map.optional("auth") else {
        return Some(None);
    };
    let names = marks.auth.as_ref()?;
    let requirement = requirement(&node, diag, names, Place::Route)?;
    Some(Some(match requirement {
        Some(r) => RouteAuth::Requires(r),
        None => RouteAuth::Disabled,
    }))
}

/// A listener's authentication: its own `auth` as the rule for every path, and the
/// settings its routes' `auth` need. `Some(None)` when neither it nor a route requires
/// anything.
pub(super) fn listener_auth(
    map: &Map<'_>,
    routes: Option<&[Route]>,
    hosts: Option<&[VirtualHost]>,
    diag: &mut Diagnostics,
    marks: &Marks<'_>,
) -> Option<Option<ListenerAuth>> {
    let own = match map.optional("auth") {
        Some(node) => {
            let names = marks.auth.as_ref()?;
            requirement(&node, diag, names, Place::Listener)?
        }
        None => None,
    };
    let routes_require = routes
        .unwrap_or_default()
        .iter()
        .chain(hosts.unwrap_or_default().iter().flat_map(|h| &h.routes))
        .any(|r| matches!(r.auth, Some(RouteAuth::Requires(_))));
    if own.is_none() && !routes_require {
        return Some(None);
    }
    let bypass_cors_preflight = marks.auth.as_ref().is_none_or(|a| a.bypass_cors_preflight);
    Some(Some(ListenerAuth {
        rules: own
            .map(|requires| AuthRule {
                matcher: RouteMatch::Prefix("/".to_owned()),
                conditions: RouteConditions::default(),
                requires: Some(requires),
            })
            .into_iter()
            .collect(),
        bypass_cors_preflight,
        stats: true,
    }))
}

/// The short form's route `auth`, checked, as the full-form YAML text it expands to.
pub(super) fn short_route_auth(
    node: &Node<'_>,
    diag: &mut Diagnostics,
    names: Option<&AuthMarks>,
) -> Option<String> {
    let requirement = requirement(node, diag, names?, Place::Route)?;
    Some(match requirement {
        Some(r) => yaml_text(&r),
        None => "none".to_owned(),
    })
}

/// A requirement as native flow YAML (what [`requirement`] reads back).
fn yaml_text(r: &Requirement) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let items = |rs: &[Requirement]| rs.iter().map(yaml_text).collect::<Vec<_>>().join(", ");
    match r {
        Requirement::Provider {
            name,
            audiences: None,
        } => quote(name),
        Requirement::Provider {
            name,
            audiences: Some(audiences),
        } => {
            let audiences: Vec<String> = audiences.iter().map(|a| quote(a)).collect();
            format!(
                "{{ provider: {}, audiences: [{}] }}",
                quote(name),
                audiences.join(", ")
            )
        }
        Requirement::ApiKey => "api_key".to_owned(),
        Requirement::Any(rs) => format!("{{ any: [{}] }}", items(rs)),
        Requirement::All(rs) => format!("{{ all: [{}] }}", items(rs)),
        Requirement::AllowMissing => "allow_missing".to_owned(),
        Requirement::AllowMissingOrFailed => "allow_missing_or_failed".to_owned(),
    }
}

/// A requirement; `Some(None)` for `none`.
fn requirement(
    node: &Node<'_>,
    diag: &mut Diagnostics,
    names: &AuthMarks,
    place: Place,
) -> Option<Option<Requirement>> {
    if let Some(word) = node.peek_str() {
        return word_requirement(node, word, diag, names, place);
    }
    if node.peek_int().is_some() || node.peek_bool().is_some() || node.seq(&mut scratch()).is_some()
    {
        node.wrong_type(
            diag,
            "a provider name, `jwt`, `api_key`, `none`, or a mapping with `provider`, `any` or `all`",
        );
        return None;
    }
    let map = node.map(diag, REQUIREMENT_KEYS)?;
    let (kind, n) = exactly_one(
        (node, &map),
        (&["provider", "any", "all"], REQUIREMENT_KEYS),
        diag,
        "a requirement mapping has exactly one of `provider`, `any` or `all`",
    )?;
    let (kind, n) = (&kind, &n);
    if *kind != "provider" {
        if let Some(a) = map.optional("audiences") {
            a.error(diag, "`audiences` applies with `provider`");
            return None;
        }
        let inner = if *kind == "any" {
            Place::Any
        } else {
            Place::All
        };
        let items = list(n, diag, |item, diag| {
            // `none` is refused inside a list, so every item is a requirement.
            requirement(item, diag, names, inner).flatten()
        })?;
        if items.len() < 2 {
            n.error(
                diag,
                format!(
                    "`{kind}` lists at least two requirements (one alone is written by itself)"
                ),
            );
            return None;
        }
        return Some(Some(if *kind == "any" {
            Requirement::Any(items)
        } else {
            Requirement::All(items)
        }));
    }
    let provider = n.str(diag)?;
    let audiences = match map.optional("audiences") {
        Some(a) => {
            let list = list(&a, diag, |item, diag| text(item, diag).map(str::to_owned))?;
            if list.is_empty() {
                a.error(
                    diag,
                    "`audiences` needs at least one audience (leave it out for the provider's)",
                );
                return None;
            }
            Some(list)
        }
        None => None,
    };
    // `{ provider: jwt, audiences: [...] }`: the only provider, with other audiences.
    let name = if provider == "jwt" {
        match word_requirement(n, provider, diag, names, place)? {
            Some(Requirement::Provider { name, .. }) => name,
            _ => return None,
        }
    } else {
        provider_name(n, provider, diag, names)?
    };
    Some(Some(Requirement::Provider { name, audiences }))
}

/// Diagnostics for a shape question whose answer is reported elsewhere.
fn scratch() -> Diagnostics {
    Diagnostics::new(Path::new(""))
}

fn word_requirement(
    node: &Node<'_>,
    word: &str,
    diag: &mut Diagnostics,
    names: &AuthMarks,
    place: Place,
) -> Option<Option<Requirement>> {
    match word {
        "none" if matches!(place, Place::Any | Place::All) => {
            node.error(
                diag,
                "`none` stands alone: a route without authentication is `auth: none`",
            );
            None
        }
        "none" => Some(None),
        "jwt" => match names.jwt_providers.as_slice() {
            [one] => Some(Some(Requirement::Provider {
                name: one.clone(),
                audiences: None,
            })),
            [] => {
                node.error(
                    diag,
                    "`jwt` needs a JWT provider in `auth.jwt_providers` (there is none)",
                );
                None
            }
            several => {
                node.error(
                    diag,
                    format!(
                        "`jwt` means the only JWT provider, but `auth.jwt_providers` has {}: {}; name one",
                        several.len(),
                        several.join(", ")
                    ),
                );
                None
            }
        },
        "api_key" if names.api_keys => Some(Some(Requirement::ApiKey)),
        "api_key" => {
            node.error(
                diag,
                "`api_key` needs `auth.api_keys` (the consumers and their keys)",
            );
            None
        }
        "allow_missing" | "allow_missing_or_failed" if place == Place::Any => {
            Some(Some(if word == "allow_missing" {
                Requirement::AllowMissing
            } else {
                Requirement::AllowMissingOrFailed
            }))
        }
        "allow_missing" | "allow_missing_or_failed" => {
            node.error(
                diag,
                format!(
                    "`{word}` goes in an `any` list beside the providers it makes optional, e.g. `{{ any: [main, {word}] }}`"
                ),
            );
            None
        }
        _ => provider_name(node, word, diag, names).map(|name| {
            Some(Requirement::Provider {
                name,
                audiences: None,
            })
        }),
    }
}

/// A declared JWT provider's name.
fn provider_name(
    node: &Node<'_>,
    name: &str,
    diag: &mut Diagnostics,
    names: &AuthMarks,
) -> Option<String> {
    if names.jwt_providers.iter().any(|p| p == name) {
        return Some(name.to_owned());
    }
    if names.jwt_providers.is_empty() {
        node.error(
            diag,
            format!(
                "unknown JWT provider {name:?}: `auth.jwt_providers` declares none (requirements: a provider's name, `jwt`, `api_key`, `none`, `any`, `all`)"
            ),
        );
        return None;
    }
    let candidates = names
        .jwt_providers
        .iter()
        .map(String::as_str)
        .chain(WORDS.iter().copied())
        .filter(|c| *c != name);
    let hint = suggest::did_you_mean(name, candidates);
    node.error(diag, format!("unknown JWT provider {name:?}{hint}"));
    None
}

#[cfg(test)]
mod tests;
