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
