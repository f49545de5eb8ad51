//! Envoy's leniencies and its unknown-field rule, applied to the document before it is
//! decoded, guided by the schema.
//!
//! Design: one walk over the tree beside the message descriptors, which resolves every
//! key to its field (by proto name or JSON name, as Envoy does) and so can:
//! - refuse a key that names no field of its message, with the message's type and a
//!   "did you mean" (Envoy: "... has unknown fields"), or drop it with a warning under
//!   `--allow-unknown-static-fields`;
//! - wrap a mapping given where a list is expected into a one-item list (Envoy's C++
//!   JSON parser accepts that, and real files rely on it: `lds.yaml` writes `filters:`
//!   as a mapping);
//! - unwrap `TypedStruct` (`type_url` + `value`) into the inline `@type` form;
//! - refuse an extension `@type` ringway does not implement, naming it and the filter,
//!   before decoding (which would only say "message not found"), except that an HTTP
//!   filter marked `is_optional: true` is dropped with a warning, as in Envoy;
//! - drop what `--accept-degraded` names ([`DEGRADABLE`]), with a warning each.
//!
//! Values themselves (durations, enums, numbers) are left to the proto3 JSON decoder.

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};

use super::schema;
use super::tree::{Entry, Tree, Value};
use crate::config::error::Diagnostics;
use crate::config::suggest;

/// The walk's state: where errors go, and what the command line allows.
pub(crate) struct Prepare<'a> {
    pub pool: &'a DescriptorPool,
    pub diag: &'a mut Diagnostics,
    /// `--allow-unknown-static-fields`.
    pub allow_unknown_fields: bool,
    /// Unknown fields dropped (Envoy's `server.static_unknown_fields`).
    pub unknown_fields: u64,
    /// `--accept-degraded`: the [`DEGRADABLE`] groups that may be dropped.
    pub accept_degraded: &'a [String],
    /// Items dropped under `--accept-degraded`.
    pub degraded: u64,
}

/// Fields ringway may drop with a warning when `--accept-degraded` names their group:
/// features whose absence changes what is observed, not what is served (a tracer, a
/// stats sink, a watchdog). `(message, field, group)`.
pub(crate) const DEGRADABLE: &[(&str, &str, &str)] = &[
    (super::schema::BOOTSTRAP, "stats_sinks", "stats_sinks"),
    (
        super::schema::BOOTSTRAP,
        "stats_flush_interval",
        "stats_sinks",
    ),
    (super::schema::BOOTSTRAP, "stats_config", "stats_config"),
    (super::schema::BOOTSTRAP, "watchdog", "watchdog"),
    (super::schema::BOOTSTRAP, "watchdogs", "watchdog"),
    (
        super::schema::BOOTSTRAP,
        "overload_manager",
        "overload_manager",
    ),
];

/// Groups whose features ringway implements now (`tracing`: the HCM's and bootstrap's
/// `tracing`, a route's `decorator` and `tracing`, issue 23): still accepted, so that a
/// command line that names one keeps working, with a warning that nothing is dropped.
pub(crate) const RETIRED_GROUPS: &[&str] = &["tracing"];

/// The groups `--accept-degraded` takes.
pub(crate) fn degradable_groups() -> Vec<&'static str> {
    let mut groups: Vec<&str> = DEGRADABLE.iter().map(|(_, _, g)| *g).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Whether a message is decoded from a JSON scalar or free-form value, not a mapping of
/// its fields.
fn is_opaque(desc: &MessageDescriptor) -> bool {
    let name = desc.full_name();
    name.starts_with("google.protobuf.") && name != "google.protobuf.Any"
}

impl Prepare<'_> {
    /// Walks `tree` as a message of type `desc`.
    pub fn message(&mut self, tree: &mut Tree, desc: &MessageDescriptor, path: &str) {
        if desc.full_name() == "google.protobuf.Any" {
            return self.any(tree, path, None);
        }
        if is_opaque(desc) {
            return;
        }
        let Value::Map(entries) = &mut tree.value else {
            // Not a mapping: the decoder reports the wrong type.
            return;
        };
        let label = entries
            .iter()
            .find(|e| e.key == "name")
            .and_then(|e| e.value.as_str())
            .map(str::to_owned);
        let mut kept = Vec::with_capacity(entries.len());
        for mut entry in std::mem::take(entries) {
            if entry.key == "@type" {
                kept.push(entry);
                continue;
            }
            let field = desc
                .get_field_by_name(&entry.key)
                .or_else(|| desc.get_field_by_json_name(&entry.key));
            let child = join(path, &entry.key);
            let Some(field) = field else {
                if self.unknown_field(desc, &entry, &child) {
                    kept.push(entry);
                }
                continue;
            };
            if self.degrade(desc, field.name(), &child) {
                continue;
            }
            self.field(&mut entry.value, &field, &child, label.as_deref());
            kept.push(entry);
        }
        *entries = kept;
    }

    /// Whether `field` of `desc` is dropped under `--accept-degraded` (with a warning).
    fn degrade(&mut self, desc: &MessageDescriptor, field: &str, path: &str) -> bool {
        let group = DEGRADABLE
            .iter()
            .find(|(m, f, _)| *m == desc.full_name() && *f == field)
            .map(|(_, _, g)| *g);
        match group {
            Some(group) if self.accept_degraded.iter().any(|g| g == group) => {
                self.degraded += 1;
                tracing::warn!(
                    "{path}: not implemented by ringway; dropped (--accept-degraded {group})"
                );
                true
            }
            _ => false,
        }
    }

    /// Reports (or, when allowed, counts and drops) a key that names no field; returns
    /// whether the entry stays.
    fn unknown_field(&mut self, desc: &MessageDescriptor, entry: &Entry, path: &str) -> bool {
        if self.allow_unknown_fields {
            self.unknown_fields += 1;
            tracing::warn!(
                "{path}: unknown field `{}` in {} ignored (--allow-unknown-static-fields)",
                entry.key,
                desc.full_name()
            );
            return false;
        }
        let names: Vec<String> = desc.fields().map(|f| f.name().to_owned()).collect();
        let hint = suggest::did_you_mean(&entry.key, names.iter().map(String::as_str));
        self.diag.error(
            entry.key_pos,
            path,
            format!(
                "unknown field `{}` in {}{hint}",
                entry.key,
                desc.full_name()
            ),
        );
        // Kept: the decoder is not run once an error is recorded.
        true
    }

    fn field(&mut self, tree: &mut Tree, field: &FieldDescriptor, path: &str, label: Option<&str>) {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return;
            };
            let Some(value_field) = entry.map_entry_value_field().kind().as_message().cloned()
            else {
                return;
            };
            if let Value::Map(entries) = &mut tree.value {
                for e in entries {
                    let child = format!("{path}[\"{}\"]", e.key);
                    // A map of extension options is keyed by the extension's name.
                    let key = e.key.clone();
                    self.message_or_any(&mut e.value, &value_field, &child, Some(&key));
                }
            }
            return;
        }
        if field.is_list() {
            if matches!(tree.value, Value::Map(_)) {
                // Envoy's leniency: one item written without the list around it.
                let item = std::mem::replace(&mut tree.value, Value::Null);
                tree.value = Value::Seq(vec![Tree {
                    pos: tree.pos,
                    value: item,
                }]);
            }
            let Kind::Message(item_desc) = field.kind() else {
                return;
            };
            if let Value::Seq(items) = &mut tree.value {
                if field.full_name()
                    == "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.http_filters"
                {
                    self.drop_optional_unknown_filters(items, path);
                }
                for (i, item) in items.iter_mut().enumerate() {
                    self.message_or_any(item, &item_desc, &format!("{path}[{i}]"), label);
                }
            }
            return;
        }
        match field.kind() {
            Kind::Message(desc) => self.message_or_any(tree, &desc, path, label),
            Kind::Enum(desc) => {
                // Names the values, where the decoder would only say "unrecognized".
                if let Value::Str(name) = &tree.value {
                    if desc.get_value_by_name(name).is_none() {
                        let values: Vec<String> =
                            desc.values().map(|v| v.name().to_owned()).collect();
                        let names = values.join(", ");
                        let hint = suggest::did_you_mean(name, values.iter().map(String::as_str));
                        self.diag.error(
                            tree.pos,
                            path,
                            format!(
                                "`{}` has no value {name} (it takes {names}){hint}",
                                field.name()
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn message_or_any(
        &mut self,
        tree: &mut Tree,
        desc: &MessageDescriptor,
        path: &str,
        label: Option<&str>,
    ) {
        if desc.full_name() == "google.protobuf.Any" {
            self.any(tree, path, label);
        } else {
            self.message(tree, desc, path);
        }
    }

    /// An `Any`: `@type` plus the message's own fields inline.
    fn any(&mut self, tree: &mut Tree, path: &str, label: Option<&str>) {
        unwrap_typed_struct(tree);
        let Some(entry) = tree.entry("@type") else {
            // The decoder reports the missing `@type`.
            return;
        };
        let (type_pos, type_url) = (
            entry.value.pos,
            entry.value.as_str().unwrap_or("").to_owned(),
        );
        let name = schema::message_name(&type_url);
        if !schema::is_supported_extension(name) {
            self.diag
                .error(type_pos, path, unsupported_extension(name, label));
            return;
        }
        match self.pool.get_message_by_name(name) {
            Some(desc) => self.message(tree, &desc, path),
            None => self
                .diag
                .error(type_pos, path, unsupported_extension(name, label)),
        }
    }

    /// Envoy's `HttpFilter.is_optional`: "clients that do not support this filter may
    /// ignore the filter but otherwise accept the config".
    fn drop_optional_unknown_filters(&mut self, items: &mut Vec<Tree>, path: &str) {
        items.retain(|item| {
            let optional = matches!(
                item.entry("is_optional")
                    .or_else(|| item.entry("isOptional"))
                    .map(|e| &e.value.value),
                Some(Value::Bool(true))
            );
            let type_name = item
                .entry("typed_config")
                .or_else(|| item.entry("typedConfig"))
                .and_then(|c| c.value.entry("@type"))
                .and_then(|t| t.value.as_str())
                .map(|url| schema::message_name(url).to_owned());
            let unknown = type_name
                .as_deref()
                .is_some_and(|name| !schema::is_supported_extension(name));
            if optional && unknown {
                tracing::warn!(
                    "{path}: optional HTTP filter {} skipped: ringway does not implement it",
                    type_name.as_deref().unwrap_or_default()
                );
            }
            !(optional && unknown)
        });
    }
}

/// Replaces `{@type: ...TypedStruct, type_url: X, value: {...}}` by `{@type: X, ...}`.
fn unwrap_typed_struct(tree: &mut Tree) {
    let is_typed_struct = tree
        .entry("@type")
        .and_then(|e| e.value.as_str())
        .is_some_and(|url| schema::TYPED_STRUCTS.contains(&schema::message_name(url)));
    if !is_typed_struct {
        return;
    }
    let Value::Map(entries) = &mut tree.value else {
        return;
    };
    let mut inner_type = None;
    let mut inner_fields = Vec::new();
    for entry in std::mem::take(entries) {
        match entry.key.as_str() {
            "type_url" | "typeUrl" => inner_type = Some(entry),
            "value" => {
                if let Value::Map(fields) = entry.value.value {
                    inner_fields = fields;
                }
            }
            _ => {}
        }
    }
    if let Some(mut type_entry) = inner_type {
        type_entry.key = "@type".to_owned();
        entries.push(type_entry);
    }
    entries.extend(inner_fields);
}

fn unsupported_extension(name: &str, label: Option<&str>) -> String {
    let label = label.map(|l| format!(" `{l}`")).unwrap_or_default();
    if name.is_empty() {
        return format!("extension{label} has no `@type`");
    }
    format!("unsupported extension{label}: ringway does not implement `@type` {name} (yet; docs/envoy.md lists the extensions it does)")
}
