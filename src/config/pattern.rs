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

/// Compiles `pattern` as written (it matches anywhere), for rewrites.
pub fn unanchored_regex(pattern: &str) -> Result<Regex, String> {
    build(pattern)
}

/// One piece of a rewrite's substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(Vec<u8>),
    /// Capture group N (0: the whole match).
    Group(usize),
}

/// Parses a substitution in RE2's syntax, as Envoy's `regex_rewrite` takes it: `\N` is
/// capture group N (a single digit), `\\` a backslash; `groups` is the pattern's number
/// of groups (group 0 included), and naming one it does not have is an error.
pub fn substitution(text: &str, groups: usize) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            literal.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'\\') => literal.push(b'\\'),
            Some(d @ b'0'..=b'9') => {
                let group = usize::from(d - b'0');
                if group >= groups {
                    return Err(format!(
                        "\\{group} names a capture group the pattern does not have (it has {})",
                        groups - 1
                    ));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Group(group));
            }
            _ => {
                return Err(
                    "a `\\` is followed by a group digit (`\\1`) or another `\\`".to_owned(),
                )
            }
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

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
    fn substitutions_take_re2_group_references() {
        assert_eq!(
            substitution("/v2/\\1/x\\\\", 2),
            Ok(vec![
                Part::Literal(b"/v2/".to_vec()),
                Part::Group(1),
                Part::Literal(b"/x\\".to_vec()),
            ])
        );
        assert!(substitution("\\2", 2)
            .unwrap_err()
            .contains("does not have"));
        assert!(substitution("a\\", 1).is_err());
        assert!(substitution("\\n", 1).is_err());
        assert_eq!(substitution("", 1), Ok(vec![]));
    }

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
