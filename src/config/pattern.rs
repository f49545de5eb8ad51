//! Regex compilation shared by the config check and the router, so the two cannot disagree
//! on what a pattern means.
//!
//! Patterns are anchored to the whole subject (a path or a header value): `^(?:p)$`. The
//! bare pattern is compiled first so that an unbalanced `)` is reported as itself rather
//! than closing our group early and silently un-anchoring the rest (`a)|(b`). The `regex`
//! crate matches in linear time, so no request can make a pattern backtrack; the size
//! limit keeps one pattern from taking megabytes in every worker's snapshot.

use regex::bytes::{Regex, RegexBuilder};

/// Upper bound on one compiled pattern (the crate's default is 10 MiB).
const SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern` anchored at both ends, or says why not in one line.
pub fn anchored_regex(pattern: &str) -> Result<Regex, String> {
    build(pattern)?;
    build(&format!("^(?:{pattern})$"))
}

fn build(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| {
            // Syntax errors span several lines (pattern, caret, message); the last one
            // is the message, and config errors are one line each.
            let text = e.to_string();
            let last = text.lines().rev().find(|l| !l.trim().is_empty());
            let message = last.unwrap_or("").trim();
            let message = message.strip_prefix("error: ").unwrap_or(message);
            format!("invalid regex {pattern:?}: {message}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_the_whole_subject() {
        let re = anchored_regex("/a|/b").unwrap();
        assert!(re.is_match(b"/a") && re.is_match(b"/b"));
        assert!(!re.is_match(b"/ab") && !re.is_match(b"x/a"));
    }

    #[test]
    fn unbalanced_groups_are_errors_not_unanchored() {
        let e = anchored_regex("a)|(b").unwrap_err();
        assert!(e.contains("invalid regex"), "{e}");
        assert!(!e.contains('\n'));
        assert!(anchored_regex("(").is_err());
    }
}
