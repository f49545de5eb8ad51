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

/// A path template (Envoy's `uri_template`), as an anchored regex with one group per
/// variable, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub regex: String,
    pub names: Vec<String>,
}

/// Envoy's limit on variables in one template.
const MAX_TEMPLATE_VARIABLES: usize = 5;

/// One segment's worth of a path: the characters a path segment may hold (RFC 3986
/// `pchar`, `%` escapes included), as Envoy's templates define them.
const SEGMENT: &str = r"[a-zA-Z0-9\-._~%!$&'()+,;:@=]+";
/// Any run of path characters, `/` included (`**`).
const SEGMENTS: &str = r"[a-zA-Z0-9\-._~%!$&'()+,;:@=/]*";

/// Parses a path template: `/` separated segments of literal text, `*` (one segment),
/// `**` (any number of segments, the last operator), and variables `{name}` (one
/// segment), `{name=**}` (the rest) or `{name=a/*/b}` (segments matching that
/// sub-template). An operator may sit beside literal text in a segment (`{file}.mp4`,
/// `**.mpd`).
pub fn template(text: &str) -> Result<Template, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must start with `/`"));
    }
    let mut regex = String::from("^");
    let mut names: Vec<String> = Vec::new();
    let mut globbed = false;
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("{text:?}: `{{` without its `}}`"))?;
            let (name, inner) = match after[..end].split_once('=') {
                Some((name, inner)) => (name, inner),
                None => (&after[..end], "*"),
            };
            let valid = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("{text:?}: {name:?} is not a variable name"));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("{text:?}: variable {name:?} appears twice"));
            }
            if globbed {
                return Err(format!("{text:?}: `**` must be the last operator"));
            }
            names.push(name.to_owned());
            regex.push('(');
            for (i, part) in inner.split('/').enumerate() {
                if i > 0 {
                    regex.push('/');
                }
                match part {
                    "*" => regex.push_str(SEGMENT),
                    "**" => {
                        regex.push_str(SEGMENTS);
                        globbed = true;
                    }
                    literal if !literal.is_empty() && literal.bytes().all(path_byte) => {
                        regex.push_str(&regex::escape(literal))
                    }
                    _ => return Err(format!("{text:?}: {inner:?} is not a variable's pattern")),
                }
            }
            regex.push(')');
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix("**") {
            if globbed {
                return Err(format!("{text:?}: `**` must be the last operator"));
            }
            regex.push_str(SEGMENTS);
            globbed = true;
            rest = after;
        } else if let Some(after) = rest.strip_prefix('*') {
            if globbed {
                return Err(format!("{text:?}: `**` must be the last operator"));
            }
            regex.push_str(SEGMENT);
            rest = after;
        } else {
            let end = rest.find(['{', '*']).unwrap_or(rest.len());
            let literal = &rest[..end];
            if let Some(bad) = literal.bytes().find(|&b| !path_byte(b) && b != b'/') {
                return Err(format!(
                    "{text:?}: {:?} cannot appear in a path template",
                    char::from(bad)
                ));
            }
            regex.push_str(&regex::escape(literal));
            rest = &rest[end..];
        }
    }
    if names.len() > MAX_TEMPLATE_VARIABLES {
        return Err(format!(
            "{text:?} has {} variables; a template has at most {MAX_TEMPLATE_VARIABLES}",
            names.len()
        ));
    }
    regex.push('$');
    build(&regex)?;
    Ok(Template { regex, names })
}

/// Parses a template rewrite (`/v2/{id}/{rest}`): literal path text and `{name}`s of
/// the route's template, as substitution parts (group N is variable N).
pub fn template_rewrite(text: &str, names: &[String]) -> Result<Vec<Part>, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must start with `/`"));
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("{text:?}: `{{` without its `}}`"))?;
            let name = &after[..end];
            let index = names.iter().position(|n| n == name).ok_or_else(|| {
                format!(
                    "{text:?}: the route's template has no variable {name:?} (it has {names:?})"
                )
            })?;
            parts.push(Part::Group(index + 1));
            rest = &after[end + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            let literal = &rest[..end];
            if let Some(bad) = literal.bytes().find(|&b| !path_byte(b) && b != b'/') {
                return Err(format!(
                    "{text:?}: {:?} cannot appear in a path",
                    char::from(bad)
                ));
            }
            parts.push(Part::Literal(literal.as_bytes().to_vec()));
            rest = &rest[end..];
        }
    }
    Ok(parts)
}

/// A character a path segment may hold as is (RFC 3986 `pchar`, `%` for escapes), but
/// `*`, which templates take as an operator.
pub(crate) fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b)
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

    fn matches(template_text: &str, path: &str) -> Option<Vec<String>> {
        let t = template(template_text).unwrap();
        let re = build(&t.regex).unwrap();
        re.captures(path.as_bytes()).map(|c| {
            (1..c.len())
                .map(|i| String::from_utf8_lossy(c.get(i).unwrap().as_bytes()).into_owned())
                .collect()
        })
    }

    #[test]
    fn templates_match_as_envoy_defines_them() {
        // `**` is zero or more segments after the `/` before it: the bare prefix is not
        // matched, the prefix with its slash is.
        assert_eq!(matches("/api/orders/**", "/api/orders"), None);
        assert_eq!(matches("/api/orders/**", "/api/orders/"), Some(vec![]));
        assert_eq!(
            matches("/api/orders/**", "/api/orders/7/items"),
            Some(vec![])
        );
        // `*` is one non-empty segment.
        assert_eq!(matches("/users/*/orders", "/users/42/orders"), Some(vec![]));
        assert_eq!(matches("/users/*/orders", "/users//orders"), None);
        assert_eq!(matches("/users/*/orders", "/users/4/2/orders"), None);
        // Variables.
        assert_eq!(
            matches("/api/{id}/{rest=**}", "/api/7/a/b"),
            Some(vec!["7".into(), "a/b".into()])
        );
        assert_eq!(
            matches("/v/{name=videos/*}/x", "/v/videos/cat/x"),
            Some(vec!["videos/cat".into()])
        );
        assert_eq!(matches("/f/{file}.mp4", "/f/a.mp4"), Some(vec!["a".into()]));
        assert_eq!(matches("/**.mpd", "/a/b/c.mpd"), Some(vec![]));
        // An escaped slash is segment data, not a separator.
        assert_eq!(matches("/a/{x}", "/a/b%2Fc"), Some(vec!["b%2Fc".into()]));
    }

    #[test]
    fn template_mistakes_are_named() {
        for (bad, says) in [
            ("api/**", "must start with `/`"),
            ("/a/**/b/*", "`**` must be the last operator"),
            ("/{x}/{x}", "appears twice"),
            ("/{1x}", "not a variable name"),
            ("/{x", "without its"),
            ("/a b", "cannot appear"),
            ("/{a}/{b}/{c}/{d}/{e}/{f}", "at most 5"),
        ] {
            let e = template(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let names = vec!["id".to_owned()];
        assert_eq!(
            template_rewrite("/v2/{id}", &names),
            Ok(vec![Part::Literal(b"/v2/".to_vec()), Part::Group(1)])
        );
        assert!(template_rewrite("/v2/{nope}", &names)
            .unwrap_err()
            .contains("no variable"));
    }

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
