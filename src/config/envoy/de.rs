//! Decoding a [`Tree`] with serde, so that prost-reflect can apply the proto3 JSON
//! mapping to it, while every error keeps the position and path of the value at fault.
//!
//! Design: errors are created by prost-reflect's visitors, which know nothing of
//! positions. Each value's deserializer stamps an error that passes through it with its
//! own position and path, unless a deeper one already did; an error raised by the
//! visitor of a mapping between its entries (an unknown field, two members of a oneof)
//! is stamped with the last key read. Plain YAML scalars are typed by YAML's core
//! schema; where a string is expected, an integer, number or boolean is taken as its
//! text (`value: 8080` for a header value), as a YAML user expects.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::tree::{Entry, Tree, Value};
use crate::config::error::Pos;

/// A decoding error and, once known, where it happened.
#[derive(Debug)]
pub(crate) struct DeError {
    pub message: String,
    pub at: Option<(Pos, String)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            at: None,
        }
    }
}

impl DeError {
    fn stamped(mut self, pos: Pos, path: &str) -> Self {
        if self.at.is_none() {
            self.at = Some((pos, path.to_owned()));
        }
        self
    }
}

/// The deserializer of one value, at `path` in the document.
pub(crate) struct De<'a> {
    pub tree: &'a Tree,
    pub path: String,
}

impl<'a> De<'a> {
    pub fn root(tree: &'a Tree) -> Self {
        De {
            tree,
            path: String::new(),
        }
    }

    fn scalar_text(&self) -> Option<String> {
        match &self.tree.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn invalid(&self, expected: &str) -> DeError {
        DeError {
            message: format!("expected {expected}, found {}", self.tree.describe()),
            at: Some((self.tree.pos, self.path.clone())),
        }
    }

    fn any<V: Visitor<'a>>(&self, visitor: V) -> Result<V::Value, DeError> {
        match &self.tree.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            Value::Map(entries) => self.map(entries, visitor),
        }
    }

    fn map<V: Visitor<'a>>(&self, entries: &'a [Entry], visitor: V) -> Result<V::Value, DeError> {
        let last_key = RefCell::new(None);
        let result = visitor.visit_map(Entries {
            entries: entries.iter(),
            value: None,
            path: &self.path,
            last_key: &last_key,
        });
        result.map_err(|e| match last_key.take() {
            Some((pos, path)) => e.stamped(pos, &path),
            None => e,
        })
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl De<'_> {
    /// Stamps an error with this value's place; an error about a scalar also names
    /// the value (the decoder's own messages, like "invalid digit found in string",
    /// do not).
    fn locate(&self, e: DeError) -> DeError {
        if e.at.is_some() {
            return e;
        }
        let scalar = !matches!(self.tree.value, Value::Seq(_) | Value::Map(_));
        let message = if scalar {
            format!("{}: {}", self.tree.describe(), e.message)
        } else {
            e.message
        };
        DeError {
            message,
            at: Some((self.tree.pos, self.path.clone())),
        }
    }
}

impl<'de> de::Deserializer<'de> for De<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.any(visitor).map_err(|e| self.locate(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let here = De {
            tree: self.tree,
            path: self.path.clone(),
        };
        match self.tree.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| here.locate(e))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar_text() {
            Some(text) => visitor.visit_str(&text),
            None => Err(self.invalid("a string")),
        }
        .map_err(|e| self.locate(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.tree.value {
            Value::Map(entries) => self.map(entries, visitor),
            _ => Err(self.invalid("a mapping")),
        }
        .map_err(|e| self.locate(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.tree.value {
            Value::Seq(_) => self.any(visitor),
            _ => Err(self.invalid("a list")),
        }
        .map_err(|e| self.locate(e))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct newtype_struct tuple tuple_struct struct enum identifier ignored_any
    }
}

/// A list's items, each with its index in the path.
struct Items<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Tree>>,
    path: &'p str,
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, tree)) => seed
                .deserialize(De {
                    tree,
                    path: format!("{}[{i}]", self.path),
                })
                .map(Some),
            None => Ok(None),
        }
    }
}

/// A mapping's entries; remembers the last key read, for errors raised between entries.
struct Entries<'a, 'p> {
    entries: std::slice::Iter<'a, Entry>,
    value: Option<&'a Entry>,
    path: &'p str,
    last_key: &'p RefCell<Option<(Pos, String)>>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let path = child_path(self.path, &entry.key);
        *self.last_key.borrow_mut() = Some((entry.key_pos, path.clone()));
        let key: de::value::StrDeserializer<'_, DeError> = entry.key.as_str().into_deserializer();
        seed.deserialize(key)
            .map(Some)
            .map_err(|e| e.stamped(entry.key_pos, &path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.value.take() else {
            return Err(de::Error::custom("a value was read before its key"));
        };
        seed.deserialize(De {
            tree: &entry.value,
            path: child_path(self.path, &entry.key),
        })
    }
}
