//! A typed view of saphyr's span-annotated YAML tree that knows where it is.
//!
//! Design: a [`Node`] is a borrowed `MarkedYaml` plus the field path that led to it
//! (`listeners[0].routes[2]`). Every accessor either returns the typed value or records an
//! error carrying the node's position and path in [`Diagnostics`] and returns `None`, so the
//! decoder reads like a schema and cannot forget to say where a problem is. Nothing here
//! panics on user input: every shape question is answered by matching, never by indexing.
//!
//! Mappings are opened with [`Node::map`], which takes the full list of keys the section
//! accepts: unknown keys are reported up front, with a did-you-mean hint from that list.
//! A YAML `null` (`key:` or `key: ~`) for an optional field means "use the default".

use saphyr::{MarkedYaml, Scalar, YamlData};

use super::error::{Diagnostics, Pos};
use super::suggest;

#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    yaml: &'a MarkedYaml<'a>,
    path: String,
}

impl<'a> Node<'a> {
    pub fn root(yaml: &'a MarkedYaml<'a>) -> Node<'a> {
        Node {
            yaml,
            path: String::new(),
        }
    }

    pub fn pos(&self) -> Pos {
        Pos::from_marker(&self.yaml.span.start)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Records an error at this node.
    pub fn error(&self, diag: &mut Diagnostics, message: impl Into<String>) {
        diag.error(self.pos(), &self.path, message);
    }

    /// Tags other than the core schema ones are resolved to a wrapper node by saphyr;
    /// we accept none, so the wrapper is reported wherever a value is read.
    fn data(&self) -> &'a YamlData<'a, MarkedYaml<'a>> {
        &self.yaml.data
    }

    pub fn is_null(&self) -> bool {
        matches!(self.data(), YamlData::Value(Scalar::Null))
    }

    /// What the node is, for "expected X, found Y" messages.
    fn kind(&self) -> String {
        match self.data() {
            YamlData::Value(Scalar::Null) => "nothing (null)".to_owned(),
            YamlData::Value(Scalar::Boolean(b)) => format!("the boolean `{b}`"),
            YamlData::Value(Scalar::Integer(i)) => format!("the integer `{i}`"),
            YamlData::Value(Scalar::FloatingPoint(f)) => format!("the number `{f}`"),
            YamlData::Value(Scalar::String(s)) => format!("the string {s:?}"),
            YamlData::Sequence(_) => "a list".to_owned(),
            YamlData::Mapping(_) => "a mapping".to_owned(),
            YamlData::Tagged(tag, _) => format!("a value tagged `{tag}` (tags are not supported)"),
            YamlData::Representation(..) | YamlData::Alias(_) | YamlData::BadValue => {
                "an invalid value (e.g. an unknown alias)".to_owned()
            }
        }
    }

    /// Reports "expected {expected}, found {what this node is}".
    pub fn wrong_type(&self, diag: &mut Diagnostics, expected: &str) {
        let found = self.kind();
        self.error(diag, format!("expected {expected}, found {found}"));
    }

    /// The string value, without reporting anything when it is not one.
    pub fn peek_str(&self) -> Option<&'a str> {
        match self.data() {
            YamlData::Value(Scalar::String(s)) => Some(s.as_ref()),
            _ => None,
        }
    }

    pub fn is_seq(&self) -> bool {
        matches!(self.data(), YamlData::Sequence(_))
    }

    pub fn peek_int(&self) -> Option<i64> {
        match self.data() {
            YamlData::Value(Scalar::Integer(i)) => Some(*i),
            _ => None,
        }
    }

    /// A number, integer or not (`50`, `0.5`); NaN and infinities are not numbers here.
    pub fn peek_number(&self) -> Option<f64> {
        match self.data() {
            // Precision loss above 2^53 is irrelevant for the ratios read this way.
            #[allow(clippy::cast_precision_loss)]
            YamlData::Value(Scalar::Integer(i)) => Some(*i as f64),
            YamlData::Value(Scalar::FloatingPoint(f)) if f.0.is_finite() => Some(f.0),
            _ => None,
        }
    }

    pub fn peek_bool(&self) -> Option<bool> {
        match self.data() {
            YamlData::Value(Scalar::Boolean(b)) => Some(*b),
            _ => None,
        }
    }

    /// An empty document (no content, only comments, or a bare `---`).
    pub fn is_empty_document(&self) -> bool {
        matches!(
            self.data(),
            YamlData::Value(Scalar::Null) | YamlData::BadValue
        )
    }

    pub fn str(&self, diag: &mut Diagnostics) -> Option<&'a str> {
        let value = self.peek_str();
        if value.is_none() {
            self.wrong_type(diag, "a string");
        }
        value
    }

    /// An integer in `range`; `what` names it for messages ("a status code").
    pub fn int_in(
        &self,
        diag: &mut Diagnostics,
        what: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let expected = format!("{what} from {} to {}", range.start(), range.end());
        match self.peek_int() {
            Some(i) if range.contains(&i) => Some(i),
            Some(i) => {
                self.error(diag, format!("expected {expected}, found {i}"));
                None
            }
            None => {
                self.wrong_type(diag, &expected);
                None
            }
        }
    }

    /// The string form of a scalar that may be written bare (`512`) or with units
    /// (`64KiB`): integers come back as their decimal text.
    pub fn scalar_text(&self, diag: &mut Diagnostics, expected: &str) -> Option<String> {
        match self.data() {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
            _ => {
                self.wrong_type(diag, expected);
                None
            }
        }
    }

    /// Reads a string and converts it, reporting the converter's message at this node.
    pub fn parse_str<T>(
        &self,
        diag: &mut Diagnostics,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.str(diag)?;
        match parse(text) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(diag, message);
                None
            }
        }
    }

    /// The items of a list, each with its `[i]` path.
    pub fn seq(&self, diag: &mut Diagnostics) -> Option<Vec<Node<'a>>> {
        match self.data() {
            YamlData::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, yaml)| Node {
                        yaml,
                        path: format!("{}[{i}]", self.path),
                    })
                    .collect(),
            ),
            _ => {
                self.wrong_type(diag, "a list");
                None
            }
        }
    }

    /// Opens a mapping whose keys must all be in `known`; others are reported (with a
    /// did-you-mean hint) at the key's position.
    pub fn map(&self, diag: &mut Diagnostics, known: &'static [&'static str]) -> Option<Map<'a>> {
        let YamlData::Mapping(entries) = self.data() else {
            self.wrong_type(diag, "a mapping");
            return None;
        };
        let mut fields = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let key_node = self.child_at(key, "");
            let YamlData::Value(Scalar::String(name)) = &key.data else {
                let found = key_node.kind();
                key_node.error(diag, format!("keys must be strings, found {found}"));
                continue;
            };
            let name: &'a str = name.as_ref();
            if !known.contains(&name) {
                let hint = suggest::did_you_mean(name, known.iter().copied());
                let key_node = self.child_at(key, name);
                key_node.error(diag, format!("unknown key `{name}`{hint}"));
                continue;
            }
            fields.push((name, self.child_at(value, name)));
        }
        Some(Map {
            pos: self.pos(),
            path: self.path.clone(),
            fields,
        })
    }

    /// The entries of a mapping whose keys are data, not field names (`claim_to_headers`,
    /// a consumer's `metadata`): each key's text, the key's node (for errors about the
    /// key) and the value's node. Keys that are not strings are reported.
    pub fn entries(&self, diag: &mut Diagnostics) -> Option<Vec<(&'a str, Node<'a>, Node<'a>)>> {
        let YamlData::Mapping(entries) = self.data() else {
            self.wrong_type(diag, "a mapping");
            return None;
        };
        let mut result = Vec::with_capacity(entries.len());
        let mut ok = true;
        for (key, value) in entries {
            let YamlData::Value(Scalar::String(name)) = &key.data else {
                let key_node = self.child_at(key, "");
                let found = key_node.kind();
                key_node.error(diag, format!("keys must be strings, found {found}"));
                ok = false;
                continue;
            };
            let name: &'a str = name.as_ref();
            result.push((name, self.child_at(key, name), self.child_at(value, name)));
        }
        ok.then_some(result)
    }

    fn child_at(&self, yaml: &'a MarkedYaml<'a>, key: &str) -> Node<'a> {
        let path = match (self.path.is_empty(), key.is_empty()) {
            (_, true) => self.path.clone(),
            (true, false) => key.to_owned(),
            (false, false) => format!("{}.{key}", self.path),
        };
        Node { yaml, path }
    }
}

/// An opened mapping: its known fields, in document order.
#[derive(Debug)]
pub(crate) struct Map<'a> {
    pos: Pos,
    path: String,
    fields: Vec<(&'a str, Node<'a>)>,
}

impl<'a> Map<'a> {
    pub fn error(&self, diag: &mut Diagnostics, message: impl Into<String>) {
        diag.error(self.pos, &self.path, message);
    }

    /// Whether the key is present with a non-null value.
    pub fn has(&self, name: &str) -> bool {
        self.optional(name).is_some()
    }

    /// The field's value, or `None` when absent or null (meaning "default").
    pub fn optional(&self, name: &str) -> Option<Node<'a>> {
        self.fields
            .iter()
            .find(|(key, value)| *key == name && !value.is_null())
            .map(|(_, value)| value.clone())
    }

    /// The field's value; reports a missing field at the mapping's position.
    pub fn field(&self, diag: &mut Diagnostics, name: &str) -> Option<Node<'a>> {
        let found = self.fields.iter().find(|(key, _)| *key == name);
        match found {
            Some((_, value)) if value.is_null() => {
                value.error(diag, format!("`{name}` needs a value"));
                None
            }
            Some((_, value)) => Some(value.clone()),
            None => {
                self.error(diag, format!("missing required key `{name}`"));
                None
            }
        }
    }
}
