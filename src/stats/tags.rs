//! Envoy's default tag extraction: which parts of a dotted stat name are tags.
//!
//! `cluster.backend.upstream_rq_2xx` is, to Prometheus and to every tagged sink, the
//! family `cluster.upstream_rq_xx` with the tags `envoy.response_code_class="2"` and
//! `envoy.cluster_name="backend"`. Dashboards are written against those families, so the
//! extraction is Envoy's own: its default descriptors (`TagNameValues` in
//! `source/common/config/well_known_names.cc`), the regular ones with the same
//! patterns and the tokenised ones (`cluster.$.**`) with the same token rules, applied in
//! the same order to the full name. Each match names a part of the name to remove and
//! the tag's value; the tag-extracted name is the full name with every removed part cut
//! out, and the tags come in the order their extractors ran.
//!
//! Runs on the admin path only (a scrape), never on a worker.

use regex::Regex;

/// One default extractor.
#[derive(Debug)]
struct Extractor {
    tag: &'static str,
    how: Match,
    /// The first token every name it can match starts with (`cluster` for
    /// `cluster.$.**` and `^cluster\.`), when there is one: the others are not tried on
    /// a name that starts otherwise (Envoy indexes its extractors the same way).
    first: Option<&'static str>,
}

#[derive(Debug)]
enum Match {
    /// Group 1 is removed from the name, group 2 is the value. `substr` must occur in
    /// the name for the regex to be tried (Envoy's pre-check); a value equal to
    /// `negative` is no match.
    Regex {
        /// Compiled the first time a name gets past the cheap checks (most of Envoy's
        /// defaults never apply to ringway's names; compiling all of them took 6 ms).
        regex: std::sync::OnceLock<Regex>,
        pattern: String,
        substr: &'static str,
        negative: &'static str,
    },
    /// Dot-separated tokens: a literal, `*` (one token), `**` (the rest), `$` (the one
    /// token that is the value; it and one adjacent dot are removed).
    Tokens(Vec<&'static str>),
}

/// A stat name split into its family and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    /// The name with the tag values cut out (`cluster.upstream_rq_xx`).
    pub name: String,
    /// `(tag name, value)`, in extraction order.
    pub tags: Vec<(&'static str, String)>,
}

/// Envoy's default extractors (each regex compiled when first needed), shared with the
/// threads that render scrapes.
#[derive(Debug)]
pub struct TagExtractors {
    extractors: Vec<Extractor>,
}

/// Envoy's shorthands in its default patterns.
fn expand(pattern: &str) -> String {
    pattern
        .replace(
            "<ADDRESS>",
            r"(?:(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+)",
        )
        .replace("<CIPHER>", r"[\w-]+")
        .replace("<TLS_VERSION>", r"TLSv\d\.\d")
        .replace("<TAG_VALUE>", r"[^\.]+")
        .replace("<ROUTE_CONFIG_NAME>", r"[\w\-\./]+")
        .replace("<SCOPED_ROUTE_CONFIG_NAME>", r"[\w\-\.]+")
        .replace(
            "<LISTENER_OR_CLUSTER_WITH_NAME>",
            r"(?:listener|cluster)\..*?",
        )
        .replace("<PROXY_PROTOCOL_VERSION>", r"\d")
}

impl TagExtractors {
    /// Envoy's default set, in Envoy's order.
    pub fn envoy_defaults() -> Self {
        // (tag, pattern, substr, negative); a pattern without `^`/`(` is tokenised.
        const RE: &[(&str, &str, &str, &str)] = &[
            ("envoy.response_code", r"_rq(_(\d{3}))$", "_rq_", ""),
            ("envoy.response_code_class", r"_rq_((\d))xx$", "_rq_", ""),
            (
                "envoy.dynamo_partition_id",
                r"^http\.<TAG_VALUE>\.dynamodb\.table\.<TAG_VALUE>\.capacity\.<TAG_VALUE>(\.__partition_id=(\w{7}))$",
                ".dynamodb.table.",
                "",
            ),
            (
                "envoy.dynamo_operation",
                r"^http\.<TAG_VALUE>\.dynamodb.(?:operation|table\.<TAG_VALUE>\.capacity)(\.(<TAG_VALUE>))(?:\.|$)",
                ".dynamodb.",
                "",
            ),
            (
                "envoy.mongo_callsite",
                "mongo.*.collection.*.callsite.$.query.**",
                "",
                "",
            ),
            (
                "envoy.dynamo_table",
                r"^http\.<TAG_VALUE>\.dynamodb.(?:table|error)\.((<TAG_VALUE>)\.)",
                ".dynamodb.",
                "",
            ),
            (
                "envoy.mongo_collection",
                "mongo.*.collection.$.**.query.*",
                "",
                "",
            ),
            ("envoy.mongo_cmd", "mongo.*.cmd.$.**", "", ""),
            ("envoy.grpc_bridge_method", "cluster.*.grpc.*.$.**", "", ""),
            ("envoy.http_user_agent", "http.*.user_agent.$.**", "", ""),
            ("envoy.virtual_cluster", "vhost.*.vcluster.$.**", "", ""),
            (
                "envoy.fault_downstream_cluster",
                "http.*.fault.$.**",
                "",
                "",
            ),
            (
                "envoy.ssl_cipher",
                r"^listener\..*?\.ssl\.ciphers(\.(<CIPHER>))$",
                ".ssl.ciphers.",
                "",
            ),
            (
                "envoy.ssl_curve",
                r"^<LISTENER_OR_CLUSTER_WITH_NAME>\.ssl\.curves(\.(<CIPHER>))$",
                ".ssl.curves.",
                "",
            ),
            (
                "envoy.ssl_sigalg",
                r"^<LISTENER_OR_CLUSTER_WITH_NAME>\.ssl\.sigalgs(\.(<CIPHER>))$",
                ".ssl.sigalgs.",
                "",
            ),
            (
                "envoy.ssl_version",
                r"^<LISTENER_OR_CLUSTER_WITH_NAME>\.ssl\.versions(\.(<TLS_VERSION>))$",
                ".ssl.versions.",
                "",
            ),
            (
                "cipher_suite",
                r"^cluster\.<TAG_VALUE>\.ssl\.ciphers(\.(<CIPHER>))$",
                ".ssl.ciphers.",
                "",
            ),
            ("envoy.grpc_bridge_service", "cluster.*.grpc.$.**", "", ""),
            ("envoy.tcp_prefix", "tcp.$.**", "", ""),
            ("envoy.udp_prefix", "udp.$.**", "", ""),
            ("envoy.clientssl_prefix", "auth.clientssl.$.**", "", ""),
            ("envoy.ratelimit_prefix", "ratelimit.$.**", "", ""),
            ("envoy.cluster_name", "cluster.$.**", "", ""),
            (
                "envoy.http_conn_manager_prefix",
                r"^listener\..*?\.http\.((<TAG_VALUE>)\.)",
                ".http.",
                "",
            ),
            ("envoy.ext_authz_prefix", "cluster.*.ext_authz.$.**", "", ""),
            ("envoy.ext_authz_prefix", "http.*.ext_authz.$.**", "", ""),
            ("envoy.http_conn_manager_prefix", "http.$.**", "", ""),
            (
                "envoy.worker_id",
                r"^(?:listener\.(?:<ADDRESS>|<TAG_VALUE>)|server|listener_manager|thread_local_cluster_manager)\.worker_((\d+)\.)",
                ".worker_",
                "",
            ),
            (
                "envoy.listener_address",
                r"^listener\.((<ADDRESS>|<TAG_VALUE>)\.)",
                "",
                "admin",
            ),
            ("envoy.virtual_host", "vhost.$.**", "", ""),
            ("envoy.mongo_prefix", "mongo.$.**", "", ""),
            (
                "envoy.rds_route_config",
                r"^http\.<TAG_VALUE>\.rds\.((<ROUTE_CONFIG_NAME>)\.)\w+?$",
                ".rds.",
                "",
            ),
            (
                "envoy.scoped_rds_config",
                r"^http\.<TAG_VALUE>\.scoped_rds\.((<SCOPED_ROUTE_CONFIG_NAME>)\.)\w+?$",
                ".scoped_rds.",
                "",
            ),
            ("envoy.route", "vhost.*.route.$.**", "", ""),
            ("envoy.thrift_prefix", "thrift.$.**", "", ""),
            ("envoy.redis_prefix", "redis.$.**", "", ""),
            (
                "envoy.local_http_ratelimit_prefix",
                "$.http_local_rate_limit.**",
                "",
                "",
            ),
            (
                "envoy.local_network_ratelimit_prefix",
                "local_rate_limit.$.**",
                "",
                "",
            ),
            (
                "envoy.local_listener_ratelimit_prefix",
                "listener_local_ratelimit.$.**",
                "",
                "",
            ),
            ("envoy.dns_filter_prefix", "dns_filter.$.**", "", ""),
            (
                "envoy.connection_limit_prefix",
                "connection_limit.$.**",
                "",
                "",
            ),
            (
                "envoy.rbac_policy_name",
                r"^http\.<TAG_VALUE>\.rbac\.(?:<TAG_VALUE>\.)?policy\.((<TAG_VALUE>)\.)(allowed|shadow_allowed|denied|shadow_denied)$",
                "",
                "",
            ),
            ("envoy.rbac_prefix", "$.rbac.**", "", ""),
            (
                "envoy.rbac_http_prefix",
                r"^http\.<TAG_VALUE>\.rbac\.((<TAG_VALUE>)\.).*?",
                "",
                "policy",
            ),
            (
                "envoy.proxy_protocol_prefix",
                r"^proxy_proto\.((<TAG_VALUE>)\.).+$",
                "",
                "versions",
            ),
            (
                "envoy.proxy_protocol_version",
                r"^proxy_proto\.((?:<TAG_VALUE>\.)?versions\.v(<PROXY_PROTOCOL_VERSION>)\.)\w+$",
                "",
                "",
            ),
            ("envoy.google_grpc_client_prefix", "grpc.$.**", "", ""),
            (
                "envoy.tls_certificate",
                r"^<LISTENER_OR_CLUSTER_WITH_NAME>\.ssl\.certificate\.((<TAG_VALUE>)\.).*$",
                ".ssl.certificate",
                "",
            ),
            (
                "envoy.xds_resource_name",
                r"^sds\.((<TAG_VALUE>)\.).+",
                "",
                "",
            ),
        ];
        let extractors = RE
            .iter()
            .map(|&(tag, pattern, substr, negative)| {
                let regular = pattern.starts_with('^') || pattern.contains('(');
                let first = if regular {
                    pattern.strip_prefix('^').and_then(|rest| {
                        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
                        (end > 0 && rest[end..].starts_with(r"\.")).then(|| &rest[..end])
                    })
                } else {
                    pattern
                        .split('.')
                        .next()
                        .filter(|t| !matches!(*t, "$" | "*" | "**"))
                };
                let how = if regular {
                    Match::Regex {
                        regex: std::sync::OnceLock::new(),
                        pattern: expand(pattern),
                        substr,
                        negative,
                    }
                } else {
                    Match::Tokens(pattern.split('.').collect())
                };
                Extractor { tag, how, first }
            })
            .collect();
        TagExtractors { extractors }
    }

    /// Splits `name` into its tag-extracted name and its tags.
    pub fn extract(&self, name: &str) -> Tagged {
        let mut removed: Vec<(usize, usize)> = Vec::new();
        let mut tags = Vec::new();
        let first_token = name.split('.').next().unwrap_or_default();
        for extractor in &self.extractors {
            if extractor.first.is_some_and(|first| first != first_token) {
                continue;
            }
            let found = match &extractor.how {
                Match::Regex {
                    regex,
                    pattern,
                    substr,
                    negative,
                } => {
                    if !substr.is_empty() && !name.contains(substr) {
                        continue;
                    }
                    // Envoy's defaults are fixed text, and a unit test compiles every one.
                    let regex = regex
                        .get_or_init(|| Regex::new(pattern).expect("Envoy's default tag regex"));
                    regex.captures(name).and_then(|c| {
                        let remove = c.get(1)?;
                        let value = c.get(2).unwrap_or(remove).as_str();
                        (value != *negative)
                            .then(|| ((remove.start(), remove.end()), value.to_owned()))
                    })
                }
                Match::Tokens(tokens) => {
                    // Every literal token must be in the name: a cheap first test.
                    let absent = |t: &&str| !matches!(*t, "$" | "*" | "**") && !name.contains(*t);
                    if tokens.iter().any(absent) {
                        continue;
                    }
                    tokenized(tokens, name)
                }
            };
            if let Some((range, value)) = found {
                removed.push(range);
                tags.push((extractor.tag, value));
            }
        }
        let mut extracted = String::with_capacity(name.len());
        for (i, c) in name.char_indices() {
            if !removed.iter().any(|&(start, end)| i >= start && i < end) {
                extracted.push(c);
            }
        }
        Tagged {
            name: extracted,
            tags,
        }
    }
}

/// Matches `tokens` against the dot-separated `name`; on a match, the byte range of the
/// `$` token with one adjacent dot (the one after it, or before it when it is last) and
/// the token's text.
fn tokenized(tokens: &[&str], name: &str) -> Option<((usize, usize), String)> {
    let parts: Vec<&str> = name.split('.').collect();
    // Byte offset of each part.
    let mut offsets = Vec::with_capacity(parts.len());
    let mut at = 0;
    for part in &parts {
        offsets.push(at);
        at += part.len() + 1;
    }
    let mut value = None;
    let mut p = 0;
    for (t, token) in tokens.iter().enumerate() {
        match *token {
            "**" => {
                // The rest (at least one token when it is last, as in Envoy's patterns).
                if t + 1 == tokens.len() {
                    if p >= parts.len() {
                        return None;
                    }
                    p = parts.len();
                    break;
                }
                // `**` in the middle: the remaining tokens must match some suffix.
                let rest = &tokens[t + 1..];
                let start = (p..=parts.len()).find(|&s| {
                    parts.len() >= s + rest.len()
                        && rest
                            .iter()
                            .zip(&parts[s..])
                            .all(|(tok, part)| *tok == "*" || *tok == "$" || tok == part)
                })?;
                for (k, tok) in rest.iter().enumerate() {
                    if *tok == "$" {
                        value = Some(start + k);
                    }
                }
                p = parts.len();
                break;
            }
            _ if p >= parts.len() => return None,
            "*" => p += 1,
            "$" => {
                value = Some(p);
                p += 1;
            }
            literal => {
                if parts[p] != literal {
                    return None;
                }
                p += 1;
            }
        }
    }
    if p != parts.len() {
        return None;
    }
    let index = value?;
    let start = offsets[index];
    let end = start + parts[index].len();
    let range = if end < name.len() {
        (start, end + 1)
    } else {
        (start.saturating_sub(1), end)
    };
    Some((range, parts[index].to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(name: &str) -> (String, Vec<(&'static str, String)>) {
        let t = TagExtractors::envoy_defaults().extract(name);
        (t.name, t.tags)
    }

    fn tags(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn every_default_regex_compiles() {
        for extractor in &TagExtractors::envoy_defaults().extractors {
            if let Match::Regex { pattern, .. } = &extractor.how {
                assert!(Regex::new(pattern).is_ok(), "{}: {pattern}", extractor.tag);
            }
        }
    }

    #[test]
    fn extractors_are_indexed_by_their_first_token() {
        let all = TagExtractors::envoy_defaults();
        let first = |tag: &str| {
            all.extractors
                .iter()
                .filter(|e| e.tag == tag)
                .map(|e| e.first)
                .collect::<Vec<_>>()
        };
        assert_eq!(first("envoy.cluster_name"), [Some("cluster")]);
        assert_eq!(first("envoy.listener_address"), [Some("listener")]);
        assert_eq!(first("envoy.response_code"), [None]);
        assert_eq!(first("envoy.worker_id"), [None]);
        assert_eq!(first("envoy.local_http_ratelimit_prefix"), [None]);
        assert_eq!(first("envoy.dynamo_table"), [Some("http")]);
    }

    #[test]
    fn the_examples_of_envoys_prometheus_mapping() {
        assert_eq!(
            tagged("cluster.backend.upstream_rq_total"),
            (
                "cluster.upstream_rq_total".into(),
                tags(&[("envoy.cluster_name", "backend")])
            )
        );
        assert_eq!(
            tagged("cluster.backend.upstream_rq_200"),
            (
                "cluster.upstream_rq".into(),
                tags(&[
                    ("envoy.response_code", "200"),
                    ("envoy.cluster_name", "backend")
                ])
            )
        );
        assert_eq!(
            tagged("cluster.backend.upstream_rq_5xx"),
            (
                "cluster.upstream_rq_xx".into(),
                tags(&[
                    ("envoy.response_code_class", "5"),
                    ("envoy.cluster_name", "backend")
                ])
            )
        );
        assert_eq!(
            tagged("http.ingress_http.downstream_rq_2xx"),
            (
                "http.downstream_rq_xx".into(),
                tags(&[
                    ("envoy.response_code_class", "2"),
                    ("envoy.http_conn_manager_prefix", "ingress_http")
                ])
            )
        );
        // A listener's view of its connection manager (Envoy:
        // `envoy_listener_http_downstream_rq_xx{envoy_response_code_class="2",
        // envoy_http_conn_manager_prefix="ingress_http",
        // envoy_listener_address="0.0.0.0_10000"}`).
        assert_eq!(
            tagged("listener.0.0.0.0_10000.http.ingress_http.downstream_rq_2xx"),
            (
                "listener.http.downstream_rq_xx".into(),
                tags(&[
                    ("envoy.response_code_class", "2"),
                    ("envoy.http_conn_manager_prefix", "ingress_http"),
                    ("envoy.listener_address", "0.0.0.0_10000")
                ])
            )
        );
        assert_eq!(
            tagged("listener.0.0.0.0_10000.downstream_cx_total"),
            (
                "listener.downstream_cx_total".into(),
                tags(&[("envoy.listener_address", "0.0.0.0_10000")])
            )
        );
        assert_eq!(
            tagged("listener.0.0.0.0_10000.worker_3.downstream_cx_active"),
            (
                "listener.worker_downstream_cx_active".into(),
                tags(&[
                    ("envoy.worker_id", "3"),
                    ("envoy.listener_address", "0.0.0.0_10000")
                ])
            )
        );
        assert_eq!(
            tagged("listener.[__1]_8080.downstream_cx_total").1,
            tags(&[("envoy.listener_address", "[__1]_8080")])
        );
        assert_eq!(
            tagged("tcp.postgres_tcp.downstream_cx_total"),
            (
                "tcp.downstream_cx_total".into(),
                tags(&[("envoy.tcp_prefix", "postgres_tcp")])
            )
        );
        assert_eq!(tagged("server.live"), ("server.live".into(), Vec::new()));
        // A named listener (ringway's native names) is a tag value too; `admin` is not.
        assert_eq!(
            tagged("listener.public.downstream_cx_total").1,
            tags(&[("envoy.listener_address", "public")])
        );
        assert_eq!(
            tagged("listener.admin.downstream_cx_total"),
            ("listener.admin.downstream_cx_total".into(), Vec::new())
        );
        assert_eq!(
            tagged("vhost.api.route.orders.upstream_rq_time"),
            (
                "vhost.route.upstream_rq_time".into(),
                tags(&[("envoy.virtual_host", "api"), ("envoy.route", "orders")])
            )
        );
    }
}
