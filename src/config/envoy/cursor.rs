//! Reading a decoded message with the position and path of each field, for errors.
//!
//! Design: the mapping onto ringway's model reads `DynamicMessage`s through [`Msg`],
//! which pairs a message with the part of the document it came from. A field's position
//! is found by walking the tree by the field's proto or JSON name (Envoy accepts both);
//! a field that is absent, or came from `--config-yaml`, takes its parent's position.
//! [`Msg::only`] is the allow-list rule: any field that is set and not listed is refused
//! by name, so the mapping cannot ignore a field by forgetting it.

use std::borrow::Cow;
use std::time::Duration;

use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value as Pv};

use super::tree::{Tree, Value};
use crate::config::error::{Diagnostics, Pos};

/// Where a value is in the document.
#[derive(Debug, Clone)]
pub(crate) struct Loc<'t> {
    /// The value's subtree, when it is in the file.
    pub tree: Option<&'t Tree>,
    /// Its position, or the nearest ancestor's.
    pub pos: Pos,
    pub path: String,
}

impl<'t> Loc<'t> {
    pub fn root(tree: &'t Tree) -> Self {
        Loc {
            tree: Some(tree),
            pos: tree.pos,
            path: String::new(),
        }
    }

    /// The location of a field, by its proto and JSON names.
    pub fn field(&self, field: &FieldDescriptor) -> Loc<'t> {
        let entry = self.tree.and_then(|t| match &t.value {
            Value::Map(entries) => entries
                .iter()
                .find(|e| e.key == field.name() || e.key == field.json_name()),
            _ => None,
        });
        let written = entry.map_or(field.name(), |e| e.key.as_str());
        let path = if self.path.is_empty() {
            written.to_owned()
        } else {
            format!("{}.{written}", self.path)
        };
        Loc {
            tree: entry.map(|e| &e.value),
            pos: entry.map_or(self.pos, |e| e.value.pos),
            path,
        }
    }

    /// The location of item `i` of a list.
    pub fn index(&self, i: usize) -> Loc<'t> {
        let item = self.tree.and_then(|t| match &t.value {
            Value::Seq(items) => items.get(i),
            _ => None,
        });
        Loc {
            tree: item,
            pos: item.map_or(self.pos, |t| t.pos),
            path: format!("{}[{i}]", self.path),
        }
    }

    /// The location of the value of map key `key`.
    pub fn key(&self, key: &str) -> Loc<'t> {
        let entry = self.tree.and_then(|t| t.entry(key));
        Loc {
            tree: entry.map(|e| &e.value),
            pos: entry.map_or(self.pos, |e| e.value.pos),
            path: format!("{}[\"{key}\"]", self.path),
        }
    }
}

/// A decoded message and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Msg<'m, 't> {
    pub msg: &'m DynamicMessage,
    pub loc: Loc<'t>,
}

impl<'m, 't> Msg<'m, 't> {
    pub fn new(msg: &'m DynamicMessage, loc: Loc<'t>) -> Self {
        Msg { msg, loc }
    }

    fn descriptor(&self, name: &str) -> Option<FieldDescriptor> {
        let field = self.msg.descriptor().get_field_by_name(name);
        debug_assert!(
            field.is_some(),
            "{} has no field {name}",
            self.msg.descriptor().full_name()
        );
        field
    }

    fn set(&self, name: &str) -> Option<&'m Pv> {
        let field = self.descriptor(name)?;
        if !self.msg.has_field(&field) {
            return None;
        }
        match self.msg.get_field(&field) {
            Cow::Borrowed(value) => Some(value),
            Cow::Owned(_) => None,
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.set(name).is_some()
    }

    /// Where field `name` is (or would be).
    pub fn at(&self, name: &str) -> Loc<'t> {
        match self.descriptor(name) {
            Some(field) => self.loc.field(&field),
            None => self.loc.clone(),
        }
    }

    /// A string field; `None` when unset or empty (proto3 cannot tell them apart).
    pub fn str(&self, name: &str) -> Option<&'m str> {
        match self.set(name) {
            Some(Pv::String(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.set(name), Some(Pv::Bool(true)))
    }

    /// An unsigned integer field (uint32 or uint64), 0 when unset.
    pub fn uint(&self, name: &str) -> u64 {
        match self.set(name) {
            Some(Pv::U32(v)) => u64::from(*v),
            Some(Pv::U64(v)) => *v,
            _ => 0,
        }
    }

    /// A signed integer field (int32 or int64), 0 when unset.
    pub fn int(&self, name: &str) -> i64 {
        match self.set(name) {
            Some(Pv::I32(v)) => i64::from(*v),
            Some(Pv::I64(v)) => *v,
            _ => 0,
        }
    }

    /// A floating-point field (double or float), 0 when unset.
    pub fn double(&self, name: &str) -> f64 {
        match self.set(name) {
            Some(Pv::F64(v)) => *v,
            Some(Pv::F32(v)) => f64::from(*v),
            _ => 0.0,
        }
    }

    /// A bytes field; `None` when unset or empty.
    pub fn bytes(&self, name: &str) -> Option<&'m [u8]> {
        match self.set(name) {
            Some(Pv::Bytes(b)) if !b.is_empty() => Some(b.as_ref()),
            _ => None,
        }
    }

    /// An enum field's value name; `None` when unset (the zero value).
    pub fn enum_name(&self, name: &str) -> Option<String> {
        let Some(Pv::EnumNumber(number)) = self.set(name) else {
            return None;
        };
        let field = self.descriptor(name)?;
        let prost_reflect::Kind::Enum(desc) = field.kind() else {
            return None;
        };
        Some(
            desc.get_value(*number)
                .map_or_else(|| number.to_string(), |v| v.name().to_owned()),
        )
    }

    /// A message field, when set.
    pub fn child(&self, name: &str) -> Option<Msg<'m, 't>> {
        match self.set(name) {
            Some(Pv::Message(m)) => Some(Msg::new(m, self.at(name))),
            _ => None,
        }
    }

    /// The items of a repeated message field.
    pub fn children(&self, name: &str) -> Vec<Msg<'m, 't>> {
        let Some(Pv::List(items)) = self.set(name) else {
            return Vec::new();
        };
        let loc = self.at(name);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Pv::Message(m) => Some(Msg::new(m, loc.index(i))),
                _ => None,
            })
            .collect()
    }

    /// The items of a repeated string field.
    pub fn strings(&self, name: &str) -> Vec<&'m str> {
        let Some(Pv::List(items)) = self.set(name) else {
            return Vec::new();
        };
        items.iter().filter_map(|v| v.as_str()).collect()
    }

    /// The items of a repeated unsigned integer field (uint32 or uint64).
    pub fn uints(&self, name: &str) -> Vec<u64> {
        let Some(Pv::List(items)) = self.set(name) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|v| match v {
                Pv::U32(v) => Some(u64::from(*v)),
                Pv::U64(v) => Some(*v),
                _ => None,
            })
            .collect()
    }

    /// A `google.protobuf.Duration` field, when set. Negative durations are refused by
    /// the validation rules before the mapping runs; they read as zero here.
    pub fn duration(&self, name: &str) -> Option<Duration> {
        let d = self.child(name)?;
        let seconds = match d.set("seconds") {
            Some(Pv::I64(s)) => *s,
            _ => 0,
        };
        let nanos = match d.set("nanos") {
            Some(Pv::I32(n)) => *n,
            _ => 0,
        };
        let seconds = u64::try_from(seconds).unwrap_or(0);
        let nanos = u32::try_from(nanos).unwrap_or(0);
        Some(Duration::new(seconds, nanos))
    }

    /// A wrapper field's value (`UInt32Value`, `BoolValue`, ...), when set.
    pub fn wrapped(&self, name: &str) -> Option<Pv> {
        let Some(Pv::Message(m)) = self.set(name) else {
            return None;
        };
        m.get_field_by_name("value").map(Cow::into_owned)
    }

    pub fn wrapped_uint(&self, name: &str) -> Option<u64> {
        match self.wrapped(name)? {
            Pv::U32(v) => Some(u64::from(v)),
            Pv::U64(v) => Some(v),
            _ => None,
        }
    }

    pub fn wrapped_bool(&self, name: &str) -> Option<bool> {
        self.wrapped(name)?.as_bool()
    }

    /// The `typed_config`-style `Any` field `name`, decoded: its message name and payload.
    pub fn any(&self, name: &str) -> Option<(String, DynamicMessage)> {
        match self.set(name) {
            Some(Pv::Message(any)) => decode_any(any),
            _ => None,
        }
    }

    /// The entries of a `map<string, google.protobuf.Any>` field (a
    /// `typed_per_filter_config`, `typed_extension_protocol_options`): each key, where it
    /// is, and the message it holds, decoded (entries of a type outside the schema,
    /// already refused by the preparation pass, are left out).
    pub fn any_map(&self, name: &str) -> Vec<(String, Loc<'t>, String, DynamicMessage)> {
        let Some(Pv::Map(map)) = self.set(name) else {
            return Vec::new();
        };
        let loc = self.at(name);
        map.iter()
            .filter_map(|(key, value)| {
                let key = match key {
                    prost_reflect::MapKey::String(k) => k.clone(),
                    other => format!("{other:?}"),
                };
                let Pv::Message(any) = value else {
                    return None;
                };
                let (type_name, payload) = decode_any(any)?;
                Some((key.clone(), loc.key(&key), type_name, payload))
            })
            .collect()
    }

    /// Refuses every field that is set and not in `allowed`: ringway never ignores a
    /// field it does not implement.
    pub fn only(&self, diag: &mut Diagnostics, allowed: &[&str]) {
        for field in self.msg.descriptor().fields() {
            if self.msg.has_field(&field) && !allowed.contains(&field.name()) {
                let loc = self.loc.field(&field);
                diag.error(
                    loc.pos,
                    &loc.path,
                    format!(
                        "unsupported: ringway does not implement `{}` of {} (yet); remove it or see docs/envoy.md",
                        field.name(),
                        self.msg.descriptor().full_name()
                    ),
                );
            }
        }
    }

    /// Records an error at field `name` (or at the message when it is absent).
    pub fn error(&self, diag: &mut Diagnostics, name: &str, message: impl Into<String>) {
        let loc = self.at(name);
        diag.error(loc.pos, &loc.path, message);
    }
}

/// An `Any` decoded with the schema: its message name and payload (`None` for a type
/// outside the schema, which the preparation pass has already refused).
pub(crate) fn decode_any(any: &DynamicMessage) -> Option<(String, DynamicMessage)> {
    let url = match any.get_field_by_name("type_url")?.as_ref() {
        Pv::String(s) => s.clone(),
        _ => return None,
    };
    let value = match any.get_field_by_name("value")?.as_ref() {
        Pv::Bytes(b) => b.clone(),
        _ => return None,
    };
    let message = super::schema::message_name(&url).to_owned();
    let desc = super::schema::pool()?.get_message_by_name(&message)?;
    let payload = DynamicMessage::decode(desc, value).ok()?;
    Some((message, payload))
}
