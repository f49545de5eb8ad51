//! `/config_dump`: the effective config as Envoy's `admin.v3.ConfigDump` JSON.
//!
//! Design: an Envoy bootstrap is kept decoded (merged with `--config-yaml`), and the
//! dump is rendered from it with protobuf's JSON mapping (prost-reflect's serializer,
//! `@type` on every `Any`): the `BootstrapConfigDump`, then the static clusters,
//! listeners and route configurations (inline ones included, as Envoy lists them), each
//! with `last_updated`. Fields Envoy marks `udpa.annotations.sensitive` (private keys,
//! secrets) print `[redacted]`, as in Envoy. A native config has no Envoy form: its
//! document is dumped as JSON under ringway's own type, `ringway.config.Native`.

use prost_reflect::{DynamicMessage, ReflectMessage, SerializeOptions, Value as Pv};
use serde_json::{json, Map, Value};

use super::schema;
use super::tree::{Tree, Value as TreeValue};
use crate::config::error::Diagnostics;
use crate::config::model::Document;

const TYPE: &str = "type.googleapis.com/envoy.admin.v3.";

/// The whole dump, pretty-printed.
pub(crate) fn config_dump(document: &Document, last_updated: &str) -> String {
    let configs = match document {
        Document::Envoy(bootstrap) => envoy(bootstrap, last_updated),
        Document::Native(text) => vec![json!({
            "@type": "type.googleapis.com/ringway.config.Native",
            "config": native(text),
            "last_updated": last_updated,
        })],
        Document::None => Vec::new(),
    };
    let mut out = serde_json::to_string_pretty(&json!({ "configs": configs }))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    out.push('\n');
    out
}

fn envoy(bootstrap: &DynamicMessage, last_updated: &str) -> Vec<Value> {
    let mut bootstrap = bootstrap.clone();
    redact(&mut bootstrap);
    let as_json = |m: &DynamicMessage| -> Value {
        let options = SerializeOptions::new().use_proto_field_name(true);
        m.serialize_with_options(serde_json::value::Serializer, &options)
            .unwrap_or(Value::Null)
    };
    let with_type = |m: &DynamicMessage| -> Value {
        let mut value = as_json(m);
        if let Value::Object(fields) = &mut value {
            let mut typed = Map::new();
            typed.insert(
                "@type".into(),
                format!("type.googleapis.com/{}", m.descriptor().full_name()).into(),
            );
            typed.append(fields);
            return Value::Object(typed);
        }
        value
    };
    let resources = child(&bootstrap, "static_resources");
    let list = |name: &str| -> Vec<DynamicMessage> {
        resources
            .as_ref()
            .map(|r| children(r, name))
            .unwrap_or_default()
    };
    let clusters: Vec<Value> = list("clusters")
        .iter()
        .map(|c| json!({ "cluster": with_type(c), "last_updated": last_updated }))
        .collect();
    let listeners = list("listeners");
    let routes: Vec<Value> = listeners
        .iter()
        .flat_map(inline_route_configs)
        .map(|r| json!({ "route_config": with_type(&r), "last_updated": last_updated }))
        .collect();
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|l| {
            json!({
                "name": l.get_field_by_name("name").and_then(|n| n.as_str().map(str::to_owned)).unwrap_or_default(),
                "active_state": { "listener": with_type(l), "last_updated": last_updated },
            })
        })
        .collect();
    vec![
        json!({
            "@type": format!("{TYPE}BootstrapConfigDump"),
            "bootstrap": as_json(&bootstrap),
            "last_updated": last_updated,
        }),
        json!({ "@type": format!("{TYPE}ClustersConfigDump"), "static_clusters": clusters }),
        json!({ "@type": format!("{TYPE}ListenersConfigDump"), "static_listeners": listeners }),
        json!({ "@type": format!("{TYPE}RoutesConfigDump"), "static_route_configs": routes }),
    ]
}

/// `/runtime`: Envoy's answer for the bootstrap's `layered_runtime`, `{"layers": [names],
/// "entries": {key: {"layer_values": [one per layer, "" where it has none],
/// "final_value": the last layer's that has one}}}`. A static layer's leaves are its
/// dotted keys, their values as text (a number as Envoy writes it, [`six_digits`]; a
/// bool as `true`/`false`); an admin layer has none (`/runtime_modify` is refused). A native
/// config, or a bootstrap without `layered_runtime`, has no layers.
pub(crate) fn runtime(document: &Document) -> String {
    let layers = match document {
        Document::Envoy(bootstrap) => child(bootstrap, "layered_runtime")
            .map(|r| children(&r, "layers"))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let options = SerializeOptions::new().use_proto_field_name(true);
    let mut names = Vec::new();
    let mut entries: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (i, layer) in layers.iter().enumerate() {
        let layer = layer
            .serialize_with_options(serde_json::value::Serializer, &options)
            .unwrap_or(Value::Null);
        names.push(layer["name"].as_str().unwrap_or_default().to_owned());
        let mut leaves = Vec::new();
        runtime_leaves(&layer["static_layer"], String::new(), &mut leaves);
        for (key, value) in leaves {
            let values = entries
                .entry(key)
                .or_insert_with(|| vec![String::new(); layers.len()]);
            values[i] = value;
        }
    }
    let entries: Map<String, Value> = entries
        .into_iter()
        .map(|(key, values)| {
            let last = values.iter().rev().find(|v| !v.is_empty()).cloned();
            let entry = json!({
                "layer_values": values,
                "final_value": last.unwrap_or_default(),
            });
            (key, entry)
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&json!({ "layers": names, "entries": entries }))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    out.push('\n');
    out
}

/// A static layer's leaves (`google.protobuf.Struct` as JSON) as dotted keys and text.
fn runtime_leaves(value: &Value, key: String, out: &mut Vec<(String, String)>) {
    let text = match value {
        Value::Object(fields) => {
            for (name, value) in fields {
                let dotted = if key.is_empty() {
                    name.clone()
                } else {
                    format!("{key}.{name}")
                };
                runtime_leaves(value, dotted, out);
            }
            return;
        }
        Value::Null => return,
        Value::Number(n) => six_digits(n.as_f64().unwrap_or_default()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    out.push((key, text));
}

/// A number as Envoy's runtime writes it (`absl::StrCat` of a double: C's `%g`, six
/// significant digits, trailing zeros cut): `5000`, `0.25`, `1e+06`, `1.5e-05`.
pub(super) fn six_digits(f: f64) -> String {
    // 0 has no exponent (and JSON numbers are finite).
    if f == 0.0 {
        return "0".into();
    }
    // The exponent of the value rounded to six digits (9999995 rounds to 1e+07).
    let rounded = format!("{f:.5e}");
    let (mantissa, exponent) = rounded.split_once('e').unwrap_or((&rounded, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if (-4..6).contains(&exponent) {
        let decimals = usize::try_from(5 - exponent).unwrap_or(0);
        trim(format!("{f:.decimals$}"))
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa.to_owned()), exponent.abs())
    }
}

fn child(m: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    let field = m.descriptor().get_field_by_name(name)?;
    if !m.has_field(&field) {
        return None;
    }
    m.get_field(&field).as_message().cloned()
}

fn children(m: &DynamicMessage, name: &str) -> Vec<DynamicMessage> {
    m.get_field_by_name(name)
        .and_then(|v| {
            v.as_list().map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_message().cloned())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The `route_config`s of a listener's HTTP connection managers.
fn inline_route_configs(listener: &DynamicMessage) -> Vec<DynamicMessage> {
    children(listener, "filter_chains")
        .iter()
        .flat_map(|chain| children(chain, "filters"))
        .filter_map(|filter| {
            let any = child(&filter, "typed_config")?;
            let (name, hcm) = super::cursor::decode_any(&any)?;
            (name == schema::HCM).then_some(hcm)
        })
        .filter_map(|hcm| child(&hcm, "route_config"))
        .collect()
}

/// Replaces every field Envoy marks sensitive (and every string inside a sensitive
/// message) with `[redacted]`, through `Any`s too.
pub(crate) fn redact(message: &mut DynamicMessage) {
    let Some(sensitive) =
        schema::pool().and_then(|p| p.get_extension_by_name("udpa.annotations.sensitive"))
    else {
        return;
    };
    walk(message, &sensitive, false);
}

fn walk(message: &mut DynamicMessage, sensitive: &prost_reflect::ExtensionDescriptor, all: bool) {
    let fields: Vec<_> = message.descriptor().fields().collect();
    for field in fields {
        if !message.has_field(&field) {
            continue;
        }
        let options = field.options();
        let marked = all
            || (options.has_extension(sensitive)
                && options.get_extension(sensitive).as_bool() == Some(true));
        let value = message.get_field_mut(&field);
        redact_value(value, sensitive, marked);
    }
}

fn redact_value(value: &mut Pv, sensitive: &prost_reflect::ExtensionDescriptor, marked: bool) {
    match value {
        Pv::String(s) if marked => *s = "[redacted]".into(),
        Pv::Bytes(b) if marked => *b = "[redacted]".into(),
        Pv::Message(m) if m.descriptor().full_name() == "google.protobuf.Any" => {
            if let Some((_, mut payload)) = super::cursor::decode_any(m) {
                walk(&mut payload, sensitive, marked);
                use prost_reflect::prost::Message as _;
                if let Some(field) = m.descriptor().get_field_by_name("value") {
                    m.set_field(&field, Pv::Bytes(payload.encode_to_vec().into()));
                }
            }
        }
        Pv::Message(m) => walk(m, sensitive, marked),
        Pv::List(items) => {
            for item in items {
                redact_value(item, sensitive, marked);
            }
        }
        Pv::Map(entries) => {
            for item in entries.values_mut() {
                redact_value(item, sensitive, marked);
            }
        }
        _ => {}
    }
}

/// A native config's text as JSON (the YAML's own types).
fn native(text: &str) -> Value {
    let mut diag = Diagnostics::new(std::path::Path::new("-"));
    crate::config::yaml::load(text, &mut diag)
        .and_then(|yaml| Tree::from_yaml(&yaml, &mut diag))
        .map_or(Value::Null, |tree| to_json(&tree))
}

fn to_json(tree: &Tree) -> Value {
    match &tree.value {
        TreeValue::Null => Value::Null,
        TreeValue::Bool(b) => (*b).into(),
        TreeValue::Int(i) => (*i).into(),
        TreeValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        TreeValue::Str(s) => s.clone().into(),
        TreeValue::Seq(items) => items.iter().map(to_json).collect(),
        TreeValue::Map(entries) => entries
            .iter()
            .map(|e| (e.key.clone(), to_json(&e.value)))
            .collect::<Map<String, Value>>()
            .into(),
    }
}
