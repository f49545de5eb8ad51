//! The Envoy v3 bootstrap loader: `ringway -c envoy.yaml` with Envoy's own schema,
//! defaults, leniencies and validation rules, into the same model as the native format.
//!
//! ```text
//! envoy.yaml:31:11: static_resources.clusters[0].hosts: unknown field `hosts` in envoy.config.cluster.v3.Cluster
//! ```
//!
//! Design, in the order a file goes through it:
//! 1. `tree`: YAML (or JSON, which is YAML) to an owned tree with positions.
//! 2. `prepare`: a walk beside Envoy's descriptors (`schema`, generated from the protos
//!    envoy-types ships) that refuses unknown fields and unimplemented extension
//!    `@type`s by name and applies Envoy's leniencies.
//! 3. `de`: prost-reflect decodes the tree into a `DynamicMessage` with the proto3 JSON
//!    mapping (snake and camel case, Duration strings, wrappers, enum names, `Any`), its
//!    errors stamped with the position of the value at fault. `--config-yaml` is
//!    decoded the same way and merged (proto merge semantics).
//! 4. `rules`: Envoy's `validate.rules`, read from the schema's field options.
//! 5. `listener`, `route`, `cluster` (and the filters' own modules: `tls`, `jwt_authn`,
//!    `rbac`, `local_ratelimit`, `tracing`): the mapping onto `config::model`, reading messages
//!    through `cursor::Msg`, whose `only` refuses every set field a mapping does not
//!    list, so nothing outside what ringway implements is ever silently ignored.
//!
//! Listener names and addresses and cluster names are checked unique at the end, as in
//! Envoy. Nothing here runs on a worker: a load happens on the control thread.

mod cluster;
mod cursor;
mod de;
pub(crate) mod dump;
mod fault;
mod health;
mod jwt_authn;
mod listener;
mod local_ratelimit;
mod outlier;
mod prepare;
mod rbac;
mod resilience;
mod retry;
mod route;
mod rules;
pub(crate) mod schema;
mod tls;
mod tracing;
mod tree;

use std::path::Path;
use std::time::Duration;

use prost_reflect::{DeserializeOptions, DynamicMessage};

use super::error::{ConfigErrors, Diagnostics, Pos};
use super::model::{
    Config, ConfigFormat, Document, DriverChoice, LoadOptions, PinWorkers, Workers,
};
use cursor::{Loc, Msg};
use tree::{Tree, Value};

/// What Envoy's `0` (disabled) becomes where ringway always has a deadline: a year.
pub(crate) const DISABLED: Duration = Duration::from_secs(365 * 24 * 3600);

/// Top-level keys that only a bootstrap has (the native format has `admin` too, as a
/// scalar).
const BOOTSTRAP_KEYS: &[&str] = &[
    "static_resources",
    "staticResources",
    "dynamic_resources",
    "dynamicResources",
    "node",
    "layered_runtime",
    "layeredRuntime",
    "stats_config",
    "statsConfig",
    "overload_manager",
    "overloadManager",
    "cluster_manager",
    "clusterManager",
    "stats_sinks",
    "statsSinks",
    // An xDS `DiscoveryResponse` file (refused with its own message).
    "resources",
];

/// Whether a parsed document is an Envoy bootstrap rather than a native config.
pub(crate) fn is_bootstrap(yaml: &saphyr::MarkedYaml<'_>) -> bool {
    let saphyr::YamlData::Mapping(entries) = &yaml.data else {
        return false;
    };
    entries.iter().any(|(key, value)| {
        let key = match &key.data {
            saphyr::YamlData::Value(saphyr::Scalar::String(s)) => s.as_ref(),
            _ => return false,
        };
        BOOTSTRAP_KEYS.contains(&key)
            || (key == "admin" && matches!(value.data, saphyr::YamlData::Mapping(_)))
    })
}

/// Loads a bootstrap from `text` (the file at `source`, or `None` for `--config-yaml`
/// alone) with the options' overlay merged over it.
pub(crate) fn load(
    text: Option<&str>,
    source: &Path,
    options: &LoadOptions,
) -> Result<Config, ConfigErrors> {
    let Some(desc) = schema::pool().and_then(|p| p.get_message_by_name(schema::BOOTSTRAP)) else {
        return Err(whole_file(
            source,
            "the built-in Envoy schema (src/config/envoy/schema.bin) is damaged",
        ));
    };
    let mut diag = Diagnostics::new(source);
    let groups = prepare::degradable_groups();
    for retired in options
        .accept_degraded
        .iter()
        .filter(|g| prepare::RETIRED_GROUPS.contains(&g.as_str()))
    {
        ::tracing::warn!(
            "--accept-degraded {retired}: ringway implements these features now; nothing is dropped"
        );
    }
    if let Some(bad) = options
        .accept_degraded
        .iter()
        .find(|g| !groups.contains(&g.as_str()) && !prepare::RETIRED_GROUPS.contains(&g.as_str()))
    {
        return Err(whole_file(
            source,
            &format!(
                "--accept-degraded: unknown group {bad:?} (groups: {})",
                groups.join(", ")
            ),
        ));
    }
    let mut counts = Counts::default();
    let base = match text {
        Some(text) => decode(text, &mut diag, options, &mut counts),
        None => {
            let empty = Tree {
                pos: Pos { line: 1, column: 1 },
                value: Value::Map(Vec::new()),
            };
            Some((empty, DynamicMessage::new(desc.clone())))
        }
    };
    let overlay_source = Path::new("--config-yaml");
    let mut overlay_diag = Diagnostics::new(overlay_source);
    let overlay = options
        .config_yaml
        .as_deref()
        .map(|yaml| decode(yaml, &mut overlay_diag, options, &mut counts));
    diag.absorb(overlay_diag);
    let Some((tree, mut message)) = base else {
        return Err(diag.finish());
    };
    if let Some(overlay) = overlay {
        let Some((_, extra)) = overlay else {
            return Err(diag.finish());
        };
        use prost_reflect::prost::Message as _;
        if let Err(e) = message.merge(extra.encode_to_vec().as_slice()) {
            diag.error(
                Pos::default(),
                "",
                format!("--config-yaml cannot be merged: {e}"),
            );
        }
    }
    if diag.has_errors() {
        return Err(diag.finish());
    }
    let root = Loc::root(&tree);
    rules::check(&message, &root, &mut diag);
    if diag.has_errors() {
        return Err(diag.finish());
    }
    let service_cluster = Some(options.service_cluster.as_str()).filter(|c| !c.is_empty());
    let config = bootstrap(
        &Msg::new(&message, root),
        (source, service_cluster),
        (&options.service_node, &options.service_zone),
        &mut diag,
    );
    match config {
        Some(mut config) if !diag.has_errors() => {
            config.load_options = options.clone();
            config.document = Document::Envoy(std::sync::Arc::new(message));
            config.format = ConfigFormat::Envoy {
                unknown_fields: counts.unknown_fields,
                degraded: counts.degraded,
            };
            Ok(config)
        }
        _ => Err(diag.finish()),
    }
}

fn whole_file(source: &Path, message: &str) -> ConfigErrors {
    let mut diag = Diagnostics::new(source);
    diag.error(Pos::default(), "", message);
    diag.finish()
}

/// What the preparation passes dropped, over the file and `--config-yaml`.
#[derive(Debug, Default)]
struct Counts {
    unknown_fields: u64,
    degraded: u64,
}

/// Text to a prepared tree and its decoded bootstrap.
fn decode(
    text: &str,
    diag: &mut Diagnostics,
    options: &LoadOptions,
    counts: &mut Counts,
) -> Option<(Tree, DynamicMessage)> {
    let yaml = super::yaml::load(text, diag)?;
    let mut tree = Tree::from_yaml(&yaml, diag)?;
    if let Some(resources) = tree.entry("resources") {
        diag.error(
            resources.key_pos,
            "resources",
            "this is an xDS DiscoveryResponse (`resources`), not a bootstrap: Envoy reads it through `dynamic_resources` (filesystem xDS), which ringway does not support yet",
        );
        return None;
    }
    if matches!(tree.value, Value::Null) {
        tree.value = Value::Map(Vec::new());
    }
    let pool = schema::pool()?;
    let desc = pool.get_message_by_name(schema::BOOTSTRAP)?;
    let mut prepare = prepare::Prepare {
        pool,
        diag,
        allow_unknown_fields: options.allow_unknown_static_fields,
        unknown_fields: 0,
        accept_degraded: &options.accept_degraded,
        degraded: 0,
    };
    prepare.message(&mut tree, &desc, "");
    counts.unknown_fields += prepare.unknown_fields;
    counts.degraded += prepare.degraded;
    if diag.has_errors() {
        return None;
    }
    let decoded = DynamicMessage::deserialize_with_options(
        desc,
        de::De::root(&tree),
        &DeserializeOptions::new().deny_unknown_fields(true),
    );
    match decoded {
        Ok(message) => Some((tree, message)),
        Err(e) => {
            let (pos, path) = e.at.clone().unwrap_or_default();
            diag.error(pos, &path, e.message);
            None
        }
    }
}

/// The bootstrap's top level.
/// `service_cluster`: `--service-cluster`, which stands over `node.cluster`.
/// `service_node`, `service_zone`: `--service-node` and `--service-zone`, over
/// `node.id` and `node.locality.zone` (empty: the bootstrap's).
fn bootstrap(
    b: &Msg<'_, '_>,
    (source, service_cluster): (&Path, Option<&str>),
    (service_node, service_zone): (&str, &str),
    diag: &mut Diagnostics,
) -> Option<Config> {
    b.only(
        diag,
        &[
            "node",
            "static_resources",
            "admin",
            "layered_runtime",
            "tracing",
        ],
    );
    let node = b.child("node");
    if let Some(node) = &node {
        node.only(
            diag,
            &["id", "cluster", "locality", "metadata", "user_agent_name"],
        );
    }
    // The local service cluster (`--service-cluster`, else `node.cluster`): the value
    // of rate-limit `source_cluster` actions and the Zipkin service name.
    let node_cluster = service_cluster.or_else(|| node.as_ref().and_then(|n| n.str("cluster")));
    let admin = b.child("admin").and_then(|a| admin(&a, diag));
    let resources = b.child("static_resources");
    if let Some(r) = &resources {
        r.only(diag, &["listeners", "clusters"]);
    }
    let clusters: Vec<_> = resources
        .as_ref()
        .map(|r| r.children("clusters"))
        .unwrap_or_default()
        .iter()
        .filter_map(|c| cluster::cluster(c, diag))
        .collect();
    let names: Vec<String> = clusters.iter().map(|c| c.name.clone()).collect();
    let default_tracer = b
        .child("tracing")
        .and_then(|t| tracing::bootstrap(&t, &names, node_cluster, diag));
    let mut tracers = Vec::new();
    let mut listeners = Vec::new();
    let mut jwt_providers = Vec::new();
    let mut access_log = None;
    for (i, l) in resources
        .as_ref()
        .map(|r| r.children("listeners"))
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(mut mapped) =
            listener::listener(l, i, (&names, node_cluster), default_tracer.as_ref(), diag)
        else {
            continue;
        };
        if let (Some(tracer), Some(t)) = (mapped.tracer.take(), mapped.listener.tracing.as_mut()) {
            t.tracer = tracing::intern(&mut tracers, tracer);
        }
        if let Some(log) = mapped.access_log {
            match &access_log {
                Some(existing) if existing != &log => l.error(
                    diag,
                    "filter_chains",
                    "listeners with different access logs are not supported yet (ringway has one access log)",
                ),
                _ => access_log = Some(log),
            }
        }
        jwt_providers.push((listeners.len(), mapped.jwt_providers));
        listeners.push(mapped.listener);
    }
    let mut max_connections = None;
    if let Some(runtime) = b.child("layered_runtime") {
        layered_runtime(&runtime, &mut listeners, &mut max_connections, diag);
    }
    if listeners.is_empty() && resources.is_some() && !diag.has_errors() {
        b.error(
            diag,
            "static_resources",
            "at least one listener is required",
        );
    }
    duplicates(b, &listeners, &clusters, diag);
    if !diag.has_errors() {
        for warning in retry::unsafe_retry_warnings(&listeners) {
            ::tracing::warn!("{warning}");
        }
    }
    let auth = jwt_authn::merge(&mut listeners, jwt_providers, b, diag);
    let node_id = Some(service_node)
        .filter(|n| !n.is_empty())
        .or_else(|| node.as_ref().and_then(|n| n.str("id")))
        .unwrap_or_default();
    let locality = node.as_ref().and_then(|n| n.child("locality"));
    let zone = Some(service_zone)
        .filter(|z| !z.is_empty())
        .or_else(|| locality.as_ref().and_then(|l| l.str("zone")))
        .unwrap_or_default();
    for listener in &mut listeners {
        if let Some(tracing) = &mut listener.tracing {
            tracing::node_tags(tracing, (node_id, zone));
        }
    }
    Some(Config {
        tracers,
        auth,
        source: source.to_path_buf(),
        workers: Workers::Auto,
        pin_workers: PinWorkers::Auto,
        driver: DriverChoice::Auto,
        admin,
        listeners,
        clusters,
        access_log,
        max_connections,
        expansion: None,
        load_options: LoadOptions::default(),
        document: Default::default(),
        format: ConfigFormat::Envoy {
            unknown_fields: 0,
            degraded: 0,
        },
    })
}

fn admin(a: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<std::net::SocketAddr> {
    a.only(
        diag,
        &["address", "access_log", "access_log_path", "profile_path"],
    );
    if let Some(path) = a.str("access_log_path") {
        if path != "/dev/null" {
            ::tracing::warn!("admin.access_log_path {path:?}: ringway does not log admin requests");
        }
    }
    if a.has("access_log") {
        ::tracing::warn!("admin.access_log: ringway does not log admin requests");
    }
    // Envoy: with no address, no admin server is started.
    let address = a.child("address")?;
    let (host, port) = cluster::socket_address(&address, diag, true)?;
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Some(std::net::SocketAddr::new(ip, port)),
        Err(_) => {
            address.error(diag, "socket_address", "the admin address is an IP address");
            None
        }
    }
}

/// `layered_runtime`: static layers with the two keys ringway honours (a listener's
/// connection limit and the global connection limit). Other keys are refused: a
/// runtime key changes behaviour, which ringway would not do.
fn layered_runtime(
    runtime: &Msg<'_, '_>,
    listeners: &mut [super::model::Listener],
    max_connections: &mut Option<u64>,
    diag: &mut Diagnostics,
) {
    runtime.only(diag, &["layers"]);
    for layer in runtime.children("layers") {
        layer.only(diag, &["name", "static_layer", "admin_layer"]);
        let Some(tree) = layer.at("static_layer").tree else {
            continue;
        };
        let mut keys = Vec::new();
        flatten(tree, String::new(), &mut keys);
        for (key, value, pos) in keys {
            let at = |diag: &mut Diagnostics, message: String| {
                diag.error(pos, &format!("{}.static_layer", layer.loc.path), message)
            };
            let listener = key
                .strip_prefix("envoy.resource_limits.listener.")
                .and_then(|rest| rest.strip_suffix(".connection_limit"));
            let global = key == "overload.global_downstream_max_connections";
            if !global && listener.is_none() {
                at(diag, format!("runtime key {key} is not supported (ringway honours envoy.resource_limits.listener.<name>.connection_limit and overload.global_downstream_max_connections)"));
                continue;
            }
            let Some(n) = value else {
                at(diag, format!("runtime key {key}: expected a number"));
                continue;
            };
            if global {
                *max_connections = Some(n);
            } else if let Some(name) = listener {
                match listeners.iter_mut().find(|l| l.name == name) {
                    Some(l) => l.connection_limit = Some(n),
                    None => ::tracing::warn!(
                        "runtime key {key}: no listener is named {name:?}; it has no effect"
                    ),
                }
            }
        }
    }
}

/// A static layer's leaves as dotted keys with their numeric values.
fn flatten(tree: &Tree, prefix: String, out: &mut Vec<(String, Option<u64>, Pos)>) {
    match &tree.value {
        Value::Map(entries) => {
            for e in entries {
                let key = if prefix.is_empty() {
                    e.key.clone()
                } else {
                    format!("{prefix}.{}", e.key)
                };
                flatten(&e.value, key, out);
            }
        }
        Value::Int(i) => out.push((prefix, u64::try_from(*i).ok(), tree.pos)),
        Value::Float(f) if *f >= 0.0 && f.fract() == 0.0 => {
            out.push((prefix, Some(*f as u64), tree.pos))
        }
        Value::Str(s) => out.push((prefix, s.parse().ok(), tree.pos)),
        _ => out.push((prefix, None, tree.pos)),
    }
}

/// Listener names and addresses and cluster names must be unique (Envoy's rule too).
fn duplicates(
    b: &Msg<'_, '_>,
    listeners: &[super::model::Listener],
    clusters: &[super::model::Cluster],
    diag: &mut Diagnostics,
) {
    let mut seen = std::collections::HashSet::new();
    for l in listeners {
        if !seen.insert(("listener", l.name.clone())) {
            b.error(
                diag,
                "static_resources",
                format!("duplicate listener name \"{}\"", l.name),
            );
        }
        if !seen.insert(("address", l.address.to_string())) {
            b.error(
                diag,
                "static_resources",
                format!("two listeners bind {}", l.address),
            );
        }
    }
    for c in clusters {
        if !seen.insert(("cluster", c.name.clone())) {
            b.error(
                diag,
                "static_resources",
                format!("duplicate cluster name \"{}\"", c.name),
            );
        }
    }
}

/// A `DataSource` (`inline_string`, `inline_bytes`, `filename`, `environment_variable`);
/// a relative `filename` is read from the working directory, as Envoy does.
pub(crate) fn data_source(d: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Vec<u8>> {
    d.only(
        diag,
        &[
            "inline_string",
            "inline_bytes",
            "filename",
            "environment_variable",
        ],
    );
    if let Some(s) = d.str("inline_string") {
        return Some(s.as_bytes().to_vec());
    }
    if let Some(prost_reflect::Value::Bytes(b)) = d
        .msg
        .get_field_by_name("inline_bytes")
        .map(std::borrow::Cow::into_owned)
    {
        return Some(b.to_vec());
    }
    if let Some(path) = d.str("filename") {
        return match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                d.error(diag, "filename", format!("cannot read {path}: {e}"));
                None
            }
        };
    }
    if let Some(var) = d.str("environment_variable") {
        return match std::env::var(var) {
            Ok(value) => Some(value.into_bytes()),
            Err(_) => {
                d.error(
                    diag,
                    "environment_variable",
                    format!("environment variable {var} is not set"),
                );
                None
            }
        };
    }
    Some(Vec::new())
}

#[cfg(test)]
mod tests;
