//! Configuration: native YAML with errors that say exactly where and what.
//!
//! ```text
//! config/ringway.yaml:14:18: listeners[0].routes[2].cluster: unknown cluster "orderz"; did you mean `orders`?
//! ```
//!
//! Design: no serde. A small typed decoder ([`node`]) walks saphyr's span-annotated tree
//! and carries the field path, so every error has file, line, column and path; decoding
//! goes on after an error so that all problems (up to [`error::MAX_ERRORS`]) are reported
//! in one go, sorted by position. The pipeline is
//! `yaml` (text -> tree) -> `decode` (tree -> model, per section) -> `validate`
//! (cross-references). Nothing panics on any input: the module is fuzzed.
//!
//! The format is documented by example in `config/reference.yaml`.

mod addr;
pub mod auth;
pub mod authz;
mod balance;
mod decode;
mod decode_auth;
mod decode_authz;
mod decode_balance;
mod decode_cluster;
mod decode_cors;
mod decode_fault;
mod decode_headers;
mod decode_log;
mod decode_observability;
mod decode_proxy;
mod decode_ratelimit;
mod decode_resilience;
mod decode_rewrite;
mod decode_short;
mod decode_stats;
mod decode_tls;
mod envoy;
pub mod error;
mod fields;
pub mod format;
pub mod log_format;
mod model;
mod node;
pub mod observability;
pub mod pattern;
pub mod ratelimit;
pub mod resilience;
mod route_match;
mod suggest;
pub mod tls;
pub mod units;
mod validate;
mod yaml;

use std::path::Path;

pub use decode_auth::load_consumers;
pub use error::{ConfigError, ConfigErrors};
pub use model::{
    AccessLogConfig, AccessLogFormat, AccessLogPath, AddOnlyIf, Address, AttemptCount, Cidr,
    ClientCertMatch, Cluster, Config, ConfigFormat, CorsPolicy, DirectResponse, DnsDiscovery,
    DnsKind, DnsName, Document, DriverChoice, Endpoint, Endpoints, EnvoyForwarding, EscapedSlashes,
    ExpectContinue, HeaderAdd, HeaderMatch, HeaderMutations, HealthCheckFilter, HostMatch,
    HostRewrite, Http1Settings, Listener, LoadOptions, LookupFamily, OriginMatch,
    PathNormalization, PathRewrite, PinWorkers, PoolSettings, ProxyProtocol, ProxySettings,
    QueryMatch, Redirect, RedirectPath, Rewrite, Route, RouteAction, RouteConditions, RouteMatch,
    TrustedProxies, ValueMatch, WeightedClusters, Workers,
};

pub use model::{
    Balancing, DeclaredHealth, HashRule, HashSource, HealthCheck, HealthCheckKind, HttpCheck,
    LbPolicy, Locality, OutlierDetection, TcpCheck, MAX_PRIORITY,
};

use error::Diagnostics;

/// What Envoy's `0` (no timeout) becomes where ringway always keeps a deadline.
pub(crate) use envoy::DISABLED as NO_TIMEOUT;

impl Config {
    /// Reads and parses a config file. A read failure is reported as a single error at
    /// line 0 (the file as a whole).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(Some(path), &LoadOptions::default())
    }

    /// Reads and parses a config file, native or Envoy (chosen by content), with Envoy's
    /// command-line options; with no file, `options.config_yaml` is the whole (Envoy)
    /// config. The file is read once, start to end (it may be a pipe: Consul passes
    /// its bootstrap through one).
    pub fn load_with(path: Option<&Path>, options: &LoadOptions) -> Result<Config, ConfigErrors> {
        let Some(path) = path else {
            return envoy::load(None, Path::new("--config-yaml"), options);
        };
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Config::parse_with(&text, path, options),
                Err(e) => {
                    let error = e.utf8_error();
                    let (line, column) = position_of_byte(e.as_bytes(), error.valid_up_to());
                    Err(ConfigErrors(vec![ConfigError {
                        file: path.to_path_buf(),
                        line,
                        column,
                        path: String::new(),
                        message: "the file is not valid UTF-8".to_owned(),
                    }]))
                }
            },
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read config file: {e}"),
            }])),
        }
    }

    /// Parses config text; `source` names it in errors (use `"<inline>"` for strings).
    pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigErrors> {
        Config::parse_with(text, source, &LoadOptions::default())
    }

    /// [`Config::parse`] with Envoy's command-line options. A document is an Envoy
    /// bootstrap when its top level has a key only a bootstrap has
    /// (`static_resources`, `node`, an `admin` mapping, ...); the options (and
    /// `--config-yaml`) apply to bootstraps only.
    pub fn parse_with(
        text: &str,
        source: &Path,
        options: &LoadOptions,
    ) -> Result<Config, ConfigErrors> {
        let mut diag = Diagnostics::new(source);
        let Some(tree) = yaml::load(text, &mut diag) else {
            return Err(diag.finish());
        };
        let empty = node::Node::root(&tree).is_empty_document();
        if envoy::is_bootstrap(&tree) || (empty && options.config_yaml.is_some()) {
            return envoy::load(Some(text), source, options);
        }
        let envoy_only = [
            (options.config_yaml.is_some(), "--config-yaml"),
            (
                options.allow_unknown_static_fields,
                "--allow-unknown-static-fields",
            ),
            (!options.accept_degraded.is_empty(), "--accept-degraded"),
        ];
        if let Some((_, flag)) = envoy_only.iter().find(|(given, _)| *given) {
            diag.error(
                error::Pos { line: 1, column: 1 },
                "",
                format!("{flag} applies to Envoy bootstraps; this is a native config"),
            );
            return Err(diag.finish());
        }
        let root = node::Node::root(&tree);
        let mut marks = fields::Marks::default();
        let config = decode::config(&root, source, &mut diag, &mut marks);
        validate::check(&marks, &mut diag);
        match config {
            Some(mut config) if !diag.has_errors() => {
                config.document = Document::Native(text.into());
                Ok(config)
            }
            _ => Err(diag.finish()),
        }
    }
}

/// Envoy's `/config_dump` of a config's document (`admin.v3.ConfigDump` as JSON), with
/// `last_updated` the time it was loaded (RFC 3339).
pub fn config_dump(document: &Document, last_updated: &str) -> String {
    envoy::dump::config_dump(document, last_updated)
}

/// Envoy's `/runtime` of a config's document: its `layered_runtime` layers and their
/// entries (JSON).
pub fn runtime_dump(document: &Document) -> String {
    envoy::dump::runtime(document)
}

/// Decodes Envoy's descriptor set afresh (what the first Envoy-format load pays once per
/// process), for `benches/config_load.rs`.
#[doc(hidden)]
pub fn decode_envoy_schema() -> usize {
    envoy::schema::decode().map_or(0, |pool| pool.files().len())
}

/// The fuzz target's checks (`fuzz/fuzz_targets/config.rs`, replayed by
/// `tests/fuzz_corpus.rs`): any text is a config or a list of errors, never a panic or
/// a hang, and parsing is deterministic.
pub fn fuzz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Relative file names are resolved in a directory with nothing to read.
    let source = Path::new("/nonexistent/fuzz.yaml");
    let first = Config::parse(text, source);
    assert_eq!(
        first,
        Config::parse(text, source),
        "parsing is deterministic"
    );
}

/// 1-based line and column (in characters) of byte `offset`, for the UTF-8 error.
fn position_of_byte(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    // Everything before `offset` is valid UTF-8 (that is what `valid_up_to` means).
    let text = String::from_utf8_lossy(before);
    let line = text.matches('\n').count() + 1;
    let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        match Config::parse(text, Path::new("t.yaml")) {
            Ok(config) => panic!("expected errors, parsed {config:?}"),
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    const ROUTES: &str =
        "    routes: [{ match: { prefix: / }, direct_response: { status: 200 } }]\n";

    #[test]
    fn worker_counts() {
        for (value, expected) in [("1", Workers::Count(1)), ("1024", Workers::Count(1024))] {
            let text = format!(
                "workers: {value}\nlisteners:\n  - name: a\n    address: 127.0.0.1:1\n{ROUTES}"
            );
            let config = Config::parse(&text, Path::new("t.yaml")).expect("parses");
            assert_eq!(config.workers, expected);
        }
        assert_eq!(
            messages("workers: -3\n"),
            [
                "t.yaml:1:1: missing required key `listeners`",
                "t.yaml:1:10: workers: expected `auto` or a worker count from 1 to 1024, found -3"
            ]
        );
        assert!(messages("workers: 1025\n")[1].ends_with("found 1025"));
    }

    #[test]
    fn odd_yaml_shapes_are_reported_not_panicked_on() {
        assert_eq!(
            messages("1: x\nlisteners: []\n"),
            [
                "t.yaml:1:1: keys must be strings, found the integer `1`",
                "t.yaml:2:12: listeners: at least one listener is required"
            ]
        );
        assert_eq!(
            messages("workers: !custom 4\n")[1],
            "t.yaml:1:10: workers: expected `auto` or a worker count from 1 to 1024, found a value tagged `!custom` (tags are not supported)"
        );
        // Aliases resolve to a copy of the anchored node, positioned at the alias.
        let text = "clusters:\n  - { name: &n a, endpoints: [127.0.0.1:1] }\n  - { name: *n, endpoints: [127.0.0.1:2] }\nlisteners: []\n";
        let errors = messages(text);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("duplicate cluster name \"a\"")),
            "{errors:?}"
        );
        assert_eq!(
            messages("listeners:\n  - name:\n"),
            [
                "t.yaml:2:5: listeners[0]: missing required key `address`",
                "t.yaml:2:5: listeners[0]: a listener needs `routes` or `virtual_hosts`",
                "t.yaml:2:9: listeners[0].name: `name` needs a value"
            ]
        );
    }

    #[test]
    fn null_optional_fields_take_defaults() {
        let text = format!(
            "admin:\ndriver: ~\nlisteners:\n  - name: a\n    address: 127.0.0.1:1\n    http1:\n{ROUTES}"
        );
        let config = Config::parse(&text, Path::new("t.yaml")).expect("parses");
        assert_eq!(config.admin, None);
        assert_eq!(config.driver, DriverChoice::Auto);
        assert_eq!(config.listeners[0].http1, Http1Settings::default());
    }

    #[test]
    fn route_paths_and_content_types_are_checked() {
        let text = "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n      - match: { path: \"/a b\" }\n        direct_response: { status: 200, content_type: \"text/plain\\r\\nX: y\" }\n";
        assert_eq!(
            messages(text),
            [
                "t.yaml:5:24: listeners[0].routes[0].match.path: \"/a b\" contains ' ', which cannot appear in a request path",
                "t.yaml:6:55: listeners[0].routes[0].direct_response.content_type: \"text/plain\\r\\nX: y\" is not a valid header value (printable ASCII, not empty)"
            ]
        );
    }

    #[test]
    fn request_line_cannot_exceed_head() {
        let text = format!(
            "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    http1: {{ max_request_line: 64KiB }}\n{ROUTES}"
        );
        assert_eq!(
            messages(&text),
            ["t.yaml:4:32: listeners[0].http1.max_request_line: max_request_line (65536) is larger than max_request_head (61440), which includes it"]
        );
    }

    #[test]
    fn load_reports_invalid_utf8_with_position() {
        let dir = std::env::temp_dir().join(format!("ringway-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("bad.yaml");
        std::fs::write(&file, b"workers: auto\nadmin: \"\xff\"\n").expect("write");
        let errors = Config::load(&file).expect_err("invalid UTF-8");
        assert_eq!(errors.0[0].line, 2);
        assert_eq!(errors.0[0].column, 9);
        assert_eq!(errors.0[0].message, "the file is not valid UTF-8");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn position_of_byte_counts_chars() {
        assert_eq!(position_of_byte(b"", 0), (1, 1));
        assert_eq!(position_of_byte("a\n\u{e9}b".as_bytes(), 4), (2, 2));
        assert_eq!(position_of_byte(b"abc", 99), (1, 4));
    }
}
