//! Schema of the top-level `access_log` section.
//!
//! Design: a file of its own, next to `decode.rs`, so the access log can grow (formats,
//! filters) without touching the listener/route/cluster decoders. It uses `decode.rs`'s
//! scalar helpers (a size, a duration, a choice of words), so every error names file,
//! line, column and field path (`access_log.format`) like every other section.

use std::path::PathBuf;

use super::error::Diagnostics;
use super::fields::{choice, duration, size};
use super::model::{AccessLogConfig, AccessLogFormat, AccessLogPath};
use super::node::Node;

const ACCESS_LOG_KEYS: &[&str] = &["path", "format", "buffer", "flush_interval"];
/// `format` is one of these words, or an Envoy format string (it has a `%`).
const FORMATS: &[(&str, AccessLogFormat)] = &[
    ("text", AccessLogFormat::Text),
    ("json", AccessLogFormat::Json),
];

/// Decodes `access_log: { path, format, buffer, flush_interval }`.
pub(crate) fn access_log(node: &Node<'_>, diag: &mut Diagnostics) -> Option<AccessLogConfig> {
    let map = node.map(diag, ACCESS_LOG_KEYS)?;
    let path = map.field(diag, "path").and_then(|n| path(&n, diag));
    let format = match map.optional("format") {
        // An Envoy format string (`%START_TIME% %REQ(:METHOD)% ...`): one line per
        // request, so a newline is added when the string has none.
        Some(n) if n.peek_str().is_some_and(|s| s.contains('%')) => {
            let text = n.peek_str().unwrap_or_default();
            match super::log_format::parse(text) {
                Ok(_) => Some(AccessLogFormat::EnvoyText {
                    format: if text.ends_with('\n') {
                        text.to_owned()
                    } else {
                        format!("{text}\n")
                    },
                    omit_empty_values: false,
                }),
                Err(message) => {
                    n.error(diag, message);
                    None
                }
            }
        }
        Some(n) => choice(&n, diag, FORMATS),
        None => Some(AccessLogFormat::default()),
    };
    let buffer = match map.optional("buffer") {
        Some(n) => buffer(&n, diag),
        None => Some(AccessLogConfig::DEFAULT_BUFFER),
    };
    let flush_interval = match map.optional("flush_interval") {
        Some(n) => duration(&n, diag),
        None => Some(AccessLogConfig::DEFAULT_FLUSH_INTERVAL),
    };
    Some(AccessLogConfig {
        path: path?,
        format: format?,
        buffer: buffer?,
        flush_interval: flush_interval?,
    })
}

/// `-` for standard output, else a file path (relative paths are relative to the
/// working directory, as on the command line).
fn path(node: &Node<'_>, diag: &mut Diagnostics) -> Option<AccessLogPath> {
    let text = node.str(diag)?;
    if text == "-" {
        return Some(AccessLogPath::Stdout);
    }
    if text.trim().is_empty() {
        node.error(
            diag,
            "the path is empty; write a file path, or `-` for stdout",
        );
        return None;
    }
    if text.contains('\0') {
        node.error(diag, "the path contains a NUL character");
        return None;
    }
    if text.ends_with('/') {
        node.error(
            diag,
            format!("{text:?} names a directory; the access log needs a file path"),
        );
        return None;
    }
    Some(AccessLogPath::File(PathBuf::from(text)))
}

/// A byte size from 1 byte to [`AccessLogConfig::MAX_BUFFER`].
fn buffer(node: &Node<'_>, diag: &mut Diagnostics) -> Option<usize> {
    let bytes = size(node, diag)?;
    let max = AccessLogConfig::MAX_BUFFER;
    if bytes > max {
        node.error(
            diag,
            format!("size of {bytes} bytes is too large: at most 16MiB ({max} bytes)"),
        );
        return None;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    const LISTENERS: &str = "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes: [{ match: { prefix: / }, direct_response: { status: 200 } }]\n";

    fn parse(section: &str) -> Result<Config, Vec<String>> {
        let text = format!("{section}{LISTENERS}");
        Config::parse(&text, Path::new("t.yaml"))
            .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_and_explicit_values() {
        let config = parse("access_log: { path: /tmp/a.log }\n").expect("parses");
        let log = config.access_log.expect("configured");
        assert_eq!(log.path, AccessLogPath::File("/tmp/a.log".into()));
        assert_eq!(log.format, AccessLogFormat::Text);
        assert_eq!(log.buffer, 64 * 1024);
        assert_eq!(log.flush_interval, Duration::from_millis(100));

        let config = parse(
            "access_log:\n  path: \"-\"\n  format: json\n  buffer: 4KiB\n  flush_interval: 1s\n",
        )
        .expect("parses");
        let log = config.access_log.expect("configured");
        assert_eq!(log.path, AccessLogPath::Stdout);
        assert_eq!(log.format, AccessLogFormat::Json);
        assert_eq!(log.buffer, 4096);
        assert_eq!(log.flush_interval, Duration::from_secs(1));

        assert_eq!(parse("").expect("parses").access_log, None);
        assert_eq!(parse("access_log:\n").expect("parses").access_log, None);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            parse("access_log: { path: /x, format: jsn }\n").unwrap_err(),
            ["t.yaml:1:33: access_log.format: unknown value \"jsn\": expected one of `text`, `json`; did you mean `json`?"]
        );
        assert_eq!(
            parse("access_log: { format: text }\n").unwrap_err(),
            ["t.yaml:1:13: access_log: missing required key `path`"]
        );
        assert_eq!(
            parse("access_log: { path: /x, buffer: 0, flush_interval: 0ms, colour: red }\n")
                .unwrap_err(),
            [
                "t.yaml:1:33: access_log.buffer: size must be at least 1 byte",
                "t.yaml:1:52: access_log.flush_interval: duration must be greater than zero",
                "t.yaml:1:57: access_log.colour: unknown key `colour`",
            ]
        );
        let errors = parse("access_log: { path: \"\", buffer: 1GiB }\n").unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("access_log.path: the path is empty"));
        assert!(errors[1].contains("access_log.buffer: size of 1073741824 bytes is too large"));
    }
}
