//! Envoy's validation rules (`validate.rules` in its protos), enforced on a decoded
//! config as Envoy enforces them at load.
//!
//! Design: the rules are read from the schema itself (the field options keep the
//! protoc-gen-validate annotations), so every message ringway decodes is checked by
//! the same rules as in Envoy, without a hand-written copy per field. Implemented: the
//! rules Envoy's v3 API uses on the fields a static bootstrap sets: `message.required`,
//! required oneofs, string length and header-name/value checks, numeric bounds (also on
//! wrapper types), `enum.defined_only`, list and map sizes and their item rules,
//! duration bounds and `required`, `any.required`. Errors name the rule.

use std::borrow::Cow;
use std::cmp::Ordering;

use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, ReflectMessage, Value as Pv,
};

use super::cursor::Loc;
use super::schema;
use crate::config::error::Diagnostics;

/// The extension fields that carry the rules.
struct Extensions {
    field_rules: ExtensionDescriptor,
    oneof_required: ExtensionDescriptor,
    message_disabled: ExtensionDescriptor,
}

fn extensions() -> Option<Extensions> {
    let pool = schema::pool()?;
    Some(Extensions {
        field_rules: pool.get_extension_by_name("validate.rules")?,
        oneof_required: pool.get_extension_by_name("validate.required")?,
        message_disabled: pool.get_extension_by_name("validate.disabled")?,
    })
}

/// Checks `message` and everything in it, recording each violation.
pub(crate) fn check(message: &DynamicMessage, loc: &Loc<'_>, diag: &mut Diagnostics) {
    if let Some(ext) = extensions() {
        Checker { ext: &ext, diag }.message(message, loc);
    }
}

struct Checker<'a> {
    ext: &'a Extensions,
    diag: &'a mut Diagnostics,
}

fn get(message: &DynamicMessage, name: &str) -> Option<Pv> {
    let field = message.descriptor().get_field_by_name(name)?;
    message
        .has_field(&field)
        .then(|| message.get_field(&field).into_owned())
}

fn as_i128(v: &Pv) -> Option<i128> {
    Some(match v {
        Pv::I32(x) => i128::from(*x),
        Pv::I64(x) => i128::from(*x),
        Pv::U32(x) => i128::from(*x),
        Pv::U64(x) => i128::from(*x),
        Pv::EnumNumber(x) => i128::from(*x),
        _ => return None,
    })
}

fn as_f64(v: &Pv) -> Option<f64> {
    match v {
        Pv::F32(x) => Some(f64::from(*x)),
        Pv::F64(x) => Some(*x),
        // Integer bounds are compared exactly by `as_i128`; this is for display.
        other => as_i128(other).map(|i| i as f64),
    }
}

/// Nanoseconds of a `google.protobuf.Duration`.
fn duration_nanos(message: &DynamicMessage) -> i128 {
    let seconds = get(message, "seconds")
        .as_ref()
        .and_then(as_i128)
        .unwrap_or(0);
    let nanos = get(message, "nanos")
        .as_ref()
        .and_then(as_i128)
        .unwrap_or(0);
    seconds * 1_000_000_000 + nanos
}

fn show_nanos(nanos: i128) -> String {
    if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else {
        format!("{}s", nanos as f64 / 1e9)
    }
}

impl Checker<'_> {
    fn error(&mut self, loc: &Loc<'_>, message: String) {
        self.diag.error(loc.pos, &loc.path, message);
    }

    fn message(&mut self, message: &DynamicMessage, loc: &Loc<'_>) {
        let desc = message.descriptor();
        let disabled = desc.options();
        if disabled.has_extension(&self.ext.message_disabled)
            && disabled.get_extension(&self.ext.message_disabled).as_bool() == Some(true)
        {
            return;
        }
        for oneof in desc.oneofs().filter(|o| !o.is_synthetic()) {
            let options = oneof.options();
            let required = options.has_extension(&self.ext.oneof_required)
                && options.get_extension(&self.ext.oneof_required).as_bool() == Some(true);
            if required && !oneof.fields().any(|f| message.has_field(&f)) {
                let names: Vec<String> =
                    oneof.fields().map(|f| format!("`{}`", f.name())).collect();
                self.error(
                    loc,
                    format!(
                        "one of {} is required (in {})",
                        names.join(", "),
                        desc.full_name()
                    ),
                );
            }
        }
        for field in desc.fields() {
            let field_loc = loc.field(&field);
            self.field(message, &field, &field_loc);
        }
    }

    fn rules(&self, field: &FieldDescriptor) -> Option<DynamicMessage> {
        let options = field.options();
        if !options.has_extension(&self.ext.field_rules) {
            return None;
        }
        match options.get_extension(&self.ext.field_rules) {
            Cow::Borrowed(Pv::Message(m)) => Some(m.clone()),
            Cow::Owned(Pv::Message(m)) => Some(m),
            _ => None,
        }
    }

    fn field(&mut self, message: &DynamicMessage, field: &FieldDescriptor, loc: &Loc<'_>) {
        let present = message.has_field(field);
        let value = message.get_field(field);
        let rules = self.rules(field);
        // A oneof member's rules apply only when it is the member set (PGV's rule).
        let in_unset_oneof = !present && field.containing_oneof().is_some();
        if let (Some(rules), false) = (&rules, in_unset_oneof) {
            self.apply(rules, field, value.as_ref(), present, loc);
        }
        if !present {
            return;
        }
        let skip = rules
            .as_ref()
            .and_then(|r| get(r, "message"))
            .and_then(|m| m.as_message().and_then(|m| get(m, "skip")))
            .and_then(|s| s.as_bool())
            == Some(true);
        if skip {
            return;
        }
        match value.as_ref() {
            Pv::Message(m) => self.nested(m, loc),
            Pv::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Pv::Message(m) = item {
                        self.nested(m, &loc.index(i));
                    }
                }
            }
            Pv::Map(entries) => {
                for (key, item) in entries {
                    if let Pv::Message(m) = item {
                        let key = match key {
                            prost_reflect::MapKey::String(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        self.nested(m, &loc.key(&key));
                    }
                }
            }
            _ => {}
        }
    }

    /// A nested message; an `Any` is checked as the message it holds.
    fn nested(&mut self, message: &DynamicMessage, loc: &Loc<'_>) {
        if message.descriptor().full_name() == "google.protobuf.Any" {
            if let Some((_, payload)) = super::cursor::decode_any(message) {
                self.message(&payload, loc);
            }
            return;
        }
        if message
            .descriptor()
            .full_name()
            .starts_with("google.protobuf.")
        {
            return;
        }
        self.message(message, loc);
    }

    /// Applies one field's `FieldRules` to its value.
    fn apply(
        &mut self,
        rules: &DynamicMessage,
        field: &FieldDescriptor,
        value: &Pv,
        present: bool,
        loc: &Loc<'_>,
    ) {
        let name = field.name();
        if let Some(Pv::Message(m)) = get(rules, "message") {
            if get(&m, "required").and_then(|v| v.as_bool()) == Some(true) && !present {
                self.error(loc, format!("`{name}` is required"));
            }
        }
        for kind in [
            "float", "double", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
            "fixed64", "sfixed32", "sfixed64",
        ] {
            if let Some(Pv::Message(bounds)) = get(rules, kind) {
                // A wrapper type (`UInt32Value`) is checked on its value, when set.
                let scalar = match value {
                    Pv::Message(wrapper) => match get(wrapper, "value") {
                        Some(v) => v,
                        None if present => Pv::U64(0),
                        None => return,
                    },
                    other => other.clone(),
                };
                self.bounds(&bounds, &scalar, name, loc);
            }
        }
        if let Some(Pv::Message(s)) = get(rules, "string") {
            let text = match value {
                Pv::String(s) => s.clone(),
                Pv::Message(wrapper) => match get(wrapper, "value") {
                    Some(Pv::String(s)) => s,
                    _ => return,
                },
                _ => return,
            };
            self.string(&s, &text, name, loc);
        }
        if let Some(Pv::Message(e)) = get(rules, "enum") {
            if get(&e, "defined_only").and_then(|v| v.as_bool()) == Some(true) {
                if let (Pv::EnumNumber(n), Kind::Enum(desc)) = (value, field.kind()) {
                    if desc.get_value(*n).is_none() {
                        self.error(
                            loc,
                            format!("`{name}`: {n} is not a value of {}", desc.full_name()),
                        );
                    }
                }
            }
        }
        if let Some(Pv::Message(r)) = get(rules, "repeated") {
            if let Pv::List(items) = value {
                self.repeated(&r, items, name, loc);
            }
        }
        if let Some(Pv::Message(r)) = get(rules, "map") {
            if let Pv::Map(entries) = value {
                let n = entries.len() as u64;
                if let Some(min) = get(&r, "min_pairs").as_ref().and_then(Pv::as_u64) {
                    if n < min && !(n == 0 && ignore_empty(&r)) {
                        self.error(loc, format!("`{name}` needs at least {min} entries"));
                    }
                }
            }
        }
        if let Some(Pv::Message(d)) = get(rules, "duration") {
            self.duration(&d, value, present, name, loc);
        }
        if let Some(Pv::Message(a)) = get(rules, "any") {
            if get(&a, "required").and_then(|v| v.as_bool()) == Some(true) && !present {
                self.error(loc, format!("`{name}` is required"));
            }
        }
    }

    fn bounds(&mut self, bounds: &DynamicMessage, value: &Pv, name: &str, loc: &Loc<'_>) {
        for (rule, holds, words) in NUMBER_BOUNDS {
            let Some(bound) = get(bounds, rule) else {
                continue;
            };
            let order = match (as_i128(value), as_i128(&bound)) {
                (Some(v), Some(b)) => v.cmp(&b),
                _ => match (as_f64(value), as_f64(&bound)) {
                    (Some(v), Some(b)) => v.partial_cmp(&b).unwrap_or(Ordering::Equal),
                    _ => continue,
                },
            };
            if !holds(order) {
                let shown = as_f64(value).map_or_else(String::new, |v| v.to_string());
                let limit = as_f64(&bound).map_or_else(String::new, |v| v.to_string());
                self.error(
                    loc,
                    format!("`{name}` must be {words} {limit}, found {shown}"),
                );
            }
        }
    }

    fn string(&mut self, rules: &DynamicMessage, text: &str, name: &str, loc: &Loc<'_>) {
        if text.is_empty() && ignore_empty(rules) {
            return;
        }
        let chars = text.chars().count() as u64;
        let bytes = text.len() as u64;
        let limits = [
            ("min_len", chars, true, "characters"),
            ("max_len", chars, false, "characters"),
            ("min_bytes", bytes, true, "bytes"),
            ("max_bytes", bytes, false, "bytes"),
        ];
        for (rule, actual, is_min, unit) in limits {
            let Some(limit) = get(rules, rule).as_ref().and_then(Pv::as_u64) else {
                continue;
            };
            if is_min && actual < limit {
                if limit == 1 {
                    self.error(loc, format!("`{name}` must not be empty"));
                } else {
                    self.error(
                        loc,
                        format!("`{name}` must be at least {limit} {unit} long"),
                    );
                }
            } else if !is_min && actual > limit {
                self.error(loc, format!("`{name}` must be at most {limit} {unit} long"));
            }
        }
        if let Some(Pv::EnumNumber(kind)) = get(rules, "well_known_regex") {
            let strict = get(rules, "strict")
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            // KnownRegex: 1 = HTTP_HEADER_NAME, 2 = HTTP_HEADER_VALUE.
            let ok = match kind {
                1 => valid_header_name(text, strict),
                2 => valid_header_value(text, strict),
                _ => true,
            };
            if !ok {
                let what = if kind == 1 {
                    "header name"
                } else {
                    "header value"
                };
                self.error(
                    loc,
                    format!("`{name}`: {text:?} is not a valid HTTP {what}"),
                );
            }
        }
    }

    fn repeated(&mut self, rules: &DynamicMessage, items: &[Pv], name: &str, loc: &Loc<'_>) {
        let n = items.len() as u64;
        if n == 0 && ignore_empty(rules) {
            return;
        }
        if let Some(min) = get(rules, "min_items").as_ref().and_then(Pv::as_u64) {
            if n < min {
                let s = if min == 1 { "" } else { "s" };
                self.error(loc, format!("`{name}` needs at least {min} item{s}"));
            }
        }
        if let Some(max) = get(rules, "max_items").as_ref().and_then(Pv::as_u64) {
            if n > max {
                self.error(
                    loc,
                    format!("`{name}` takes at most {max} items, found {n}"),
                );
            }
        }
        if let Some(Pv::Message(item_rules)) = get(rules, "items") {
            if let Some(Pv::Message(s)) = get(&item_rules, "string") {
                for (i, item) in items.iter().enumerate() {
                    if let Pv::String(text) = item {
                        self.string(&s, text, name, &loc.index(i));
                    }
                }
            }
        }
    }

    fn duration(
        &mut self,
        rules: &DynamicMessage,
        value: &Pv,
        present: bool,
        name: &str,
        loc: &Loc<'_>,
    ) {
        if !present {
            if get(rules, "required").and_then(|v| v.as_bool()) == Some(true) {
                self.error(loc, format!("`{name}` is required"));
            }
            return;
        }
        let Pv::Message(d) = value else {
            return;
        };
        let actual = duration_nanos(d);
        for (rule, holds, words) in DURATION_BOUNDS {
            if let Some(Pv::Message(bound)) = get(rules, rule) {
                let bound = duration_nanos(&bound);
                if !holds(actual.cmp(&bound)) {
                    self.error(
                        loc,
                        format!(
                            "`{name}` must be {words} {}, found {}",
                            show_nanos(bound),
                            show_nanos(actual)
                        ),
                    );
                }
            }
        }
    }
}

/// A bound rule: its name, whether a comparison of value to bound satisfies it, and
/// how an error says it.
type Bound = (&'static str, fn(Ordering) -> bool, &'static str);

const NUMBER_BOUNDS: [Bound; 4] = [
    ("gt", Ordering::is_gt, "greater than"),
    ("gte", Ordering::is_ge, "at least"),
    ("lt", Ordering::is_lt, "less than"),
    ("lte", Ordering::is_le, "at most"),
];

const DURATION_BOUNDS: [Bound; 4] = [
    ("gt", Ordering::is_gt, "longer than"),
    ("gte", Ordering::is_ge, "at least"),
    ("lt", Ordering::is_lt, "shorter than"),
    ("lte", Ordering::is_le, "at most"),
];

fn ignore_empty(rules: &DynamicMessage) -> bool {
    get(rules, "ignore_empty").and_then(|v| v.as_bool()) == Some(true)
}

/// RFC 7230 token characters (and a leading `:` for pseudo-headers, which Envoy's
/// non-strict form allows).
fn valid_header_name(name: &str, strict: bool) -> bool {
    let body = name.strip_prefix(':').unwrap_or(name);
    if !strict {
        return !name.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n'));
    }
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_header_value(value: &str, strict: bool) -> bool {
    if !strict {
        return !value.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n'));
    }
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}
