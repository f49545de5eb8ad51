//! Turning text into saphyr's span-annotated tree, with every failure as a positioned error.
//!
//! Design: before building the tree we run the event parser once to bound nesting depth.
//! saphyr builds, clones and drops its tree recursively, so `[[[[...` a few hundred
//! thousand levels deep would overflow the stack; config files never nest beyond ~6 levels.
//! The same pass rejects streams with more than one document (`---` twice), which would
//! otherwise be silently ignored. Parsing twice costs microseconds on a config file.

use saphyr::{LoadableYamlNode, MarkedYaml};
use saphyr_parser::{Event, Parser};

use super::error::{Diagnostics, Pos};

/// Deepest nesting of lists and mappings accepted.
pub(crate) const MAX_DEPTH: usize = 64;

/// Parses `text` as a single YAML document. `None` means an error was reported.
pub(crate) fn load<'t>(text: &'t str, diag: &mut Diagnostics) -> Option<MarkedYaml<'t>> {
    let syntax = |diag: &mut Diagnostics, marker: &saphyr::Marker, info: &str| {
        diag.error(
            Pos::from_marker(marker),
            "",
            format!("YAML syntax error: {info}"),
        );
    };
    let mut depth = 0usize;
    let mut documents = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(error) => {
                syntax(diag, error.marker(), error.info());
                return None;
            }
        };
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let pos = Pos::from_marker(&span.start);
                    diag.error(pos, "", format!("nesting deeper than {MAX_DEPTH} levels"));
                    return None;
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    let pos = Pos::from_marker(&span.start);
                    diag.error(
                        pos,
                        "",
                        "expected one YAML document, found a second one here",
                    );
                    return None;
                }
            }
            _ => {}
        }
    }
    // The loader also rejects what the event pass cannot see, e.g. duplicate keys.
    match MarkedYaml::load_from_str(text) {
        Ok(documents) => Some(documents.into_iter().next().unwrap_or_else(|| {
            // No document at all (empty, or only comments): an empty node at 1:1.
            MarkedYaml {
                span: saphyr_parser::Span::empty(saphyr::Marker::new(0, 1, 0)),
                data: saphyr::YamlData::BadValue,
            }
        })),
        Err(error) => {
            syntax(diag, error.marker(), error.info());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn first_error(text: &str) -> String {
        let mut diag = Diagnostics::new(Path::new("t.yaml"));
        assert!(
            load(text, &mut diag).is_none(),
            "expected an error for {text:?}"
        );
        diag.finish().0[0].to_string()
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Within the scanner's own flow limit, our depth check is what stops it.
        let deep = "[".repeat(100);
        assert_eq!(
            first_error(&deep),
            "t.yaml:1:65: nesting deeper than 64 levels"
        );
        // Far beyond it, the scanner's limit may fire first; either way an error, no crash.
        for text in [
            "[".repeat(200_000),
            "{a: ".repeat(100_000),
            "- ".repeat(100_000) + "x",
        ] {
            let error = first_error(&text);
            assert!(
                error.contains("nesting deeper") || error.contains("recursion limit"),
                "{error}"
            );
        }
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        let mut diag = Diagnostics::new(Path::new("t.yaml"));
        assert!(load(&ok, &mut diag).is_some());
    }

    #[test]
    fn second_document_is_an_error() {
        assert_eq!(
            first_error("workers: 1\n---\nworkers: 2\n"),
            "t.yaml:2:1: expected one YAML document, found a second one here"
        );
    }

    #[test]
    fn syntax_errors_are_positioned() {
        assert_eq!(
            first_error("a: \"unterminated\n"),
            "t.yaml:1:4: YAML syntax error: while scanning a quoted scalar, found unexpected end of stream"
        );
        assert!(first_error("a: *nope\n").starts_with("t.yaml:1:4: YAML syntax error"));
    }
}
