//! A config document as an owned tree of plain values, each with its position.
//!
//! Design: the Envoy loader edits the document before decoding it (Envoy's leniencies:
//! a mapping where a list is expected, `TypedStruct` wrappers, optional filters it
//! does not know), so it works on its own small tree rather than on saphyr's, which it
//! builds once from saphyr's span-annotated one. Mapping keys must be strings (proto3
//! JSON has no other kind); YAML's core schema has already typed the plain scalars.

use saphyr::{MarkedYaml, Scalar, YamlData};

use crate::config::error::{Diagnostics, Pos};

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tree {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Tree>),
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping, in file order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Tree,
}

impl Tree {
    /// Converts saphyr's tree; a non-string key or an unsupported tag is reported and
    /// the result is `None`.
    pub fn from_yaml(yaml: &MarkedYaml<'_>, diag: &mut Diagnostics) -> Option<Tree> {
        let pos = Pos::from_marker(&yaml.span.start);
        let value = match &yaml.data {
            YamlData::Value(Scalar::Null) | YamlData::BadValue => Value::Null,
            YamlData::Value(Scalar::Boolean(b)) => Value::Bool(*b),
            YamlData::Value(Scalar::Integer(i)) => Value::Int(*i),
            YamlData::Value(Scalar::FloatingPoint(f)) => Value::Float(f.into_inner()),
            YamlData::Value(Scalar::String(s)) => Value::Str(s.to_string()),
            YamlData::Sequence(items) => Value::Seq(
                items
                    .iter()
                    .map(|item| Tree::from_yaml(item, diag))
                    .collect::<Option<_>>()?,
            ),
            YamlData::Mapping(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let key_pos = Pos::from_marker(&key.span.start);
                    let key = match &key.data {
                        YamlData::Value(Scalar::String(s)) => s.to_string(),
                        YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                        YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                        _ => {
                            diag.error(key_pos, "", "mapping keys must be strings");
                            return None;
                        }
                    };
                    let value = Tree::from_yaml(value, diag)?;
                    out.push(Entry {
                        key,
                        key_pos,
                        value,
                    });
                }
                Value::Map(out)
            }
            YamlData::Tagged(tag, _) => {
                diag.error(
                    pos,
                    "",
                    format!("YAML tags are not supported (found `{tag}`)"),
                );
                return None;
            }
            YamlData::Representation(..) | YamlData::Alias(_) => {
                diag.error(pos, "", "an invalid value (an unresolved alias)");
                return None;
            }
        };
        Some(Tree { pos, value })
    }

    /// The entry with this key, when this is a mapping.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    /// The string value, when this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// What the value is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => format!("the boolean `{b}`"),
            Value::Int(i) => format!("the integer `{i}`"),
            Value::Float(f) => format!("the number `{f}`"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}
