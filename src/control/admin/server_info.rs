//! `/server_info`: Envoy's `admin.v3.ServerInfo` as proto3 JSON, pretty-printed with
//! every primitive field present and the proto's field names, as Envoy writes it (tools
//! unmarshal it with strict parsers, so no field outside the proto appears). 64-bit
//! integers are strings and durations are `"<seconds>s"`, as proto3 JSON requires.

use std::fmt::Write;

use crate::{control::ControlState, stats::render::json_string};

/// `<revision>/<version>/<Clean|Modified>/<RELEASE|DEBUG>/<TLS library>`: Envoy's five
/// fields (Kuma refuses a version string with any other count).
pub fn version() -> String {
    let build = if cfg!(debug_assertions) {
        "DEBUG"
    } else {
        "RELEASE"
    };
    format!("ringway/{}/Clean/{build}/none", env!("CARGO_PKG_VERSION"))
}

/// The document.
pub fn server_info(state: &ControlState) -> String {
    let o = &state.options;
    let uptime = state.started.elapsed().as_secs();
    let mut out = String::with_capacity(2048);
    let field = |out: &mut String, indent: &str, name: &str, value: &str, last: bool| {
        let _ = write!(out, "{indent}\"{name}\": {value}");
        out.push_str(if last { "\n" } else { ",\n" });
    };
    let string = |text: &str| {
        let mut s = String::new();
        json_string(text, &mut s);
        s
    };
    out.push_str("{\n");
    field(&mut out, " ", "version", &string(&version()), false);
    field(
        &mut out,
        " ",
        "state",
        &string(state.effective_state().name()),
        false,
    );
    field(
        &mut out,
        " ",
        "hot_restart_version",
        &string(super::super::hot_restart_version(
            o.tolerated.disable_hot_restart,
        )),
        false,
    );
    out.push_str(" \"command_line_options\": {\n");
    let i = "  ";
    let secs = |d: std::time::Duration| string(&format!("{}s", d.as_secs()));
    let entries: Vec<(&str, String)> = vec![
        ("base_id", string(&o.base_id.to_string())),
        (
            "use_dynamic_base_id",
            o.tolerated.use_dynamic_base_id.to_string(),
        ),
        ("concurrency", state.workers.to_string()),
        (
            "config_path",
            string(
                &o.config_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ),
        (
            "config_yaml",
            string(o.load_options.config_yaml.as_deref().unwrap_or_default()),
        ),
        (
            "allow_unknown_static_fields",
            o.load_options.allow_unknown_static_fields.to_string(),
        ),
        ("reject_unknown_dynamic_fields", "false".into()),
        ("ignore_unknown_dynamic_fields", "false".into()),
        ("admin_address_path", string("")),
        (
            "local_address_ip_version",
            string(&o.tolerated.local_address_ip_version),
        ),
        ("log_level", string(&o.log_level)),
        (
            "component_log_level",
            string(&o.tolerated.component_log_level),
        ),
        ("log_format", string(&o.tolerated.log_format)),
        ("log_format_escaped", "false".into()),
        ("log_path", string(&o.tolerated.log_path)),
        ("service_cluster", string(&o.tolerated.service_cluster)),
        ("service_node", string(&o.tolerated.service_node)),
        ("service_zone", string(&o.tolerated.service_zone)),
        ("drain_strategy", string(&o.tolerated.drain_strategy)),
        (
            "file_flush_interval",
            string(&format!(
                "{}s",
                o.tolerated.file_flush_interval_ms as f64 / 1000.0
            )),
        ),
        ("drain_time", secs(o.drain_timeout)),
        (
            "parent_shutdown_time",
            secs(o.tolerated.parent_shutdown_time),
        ),
        (
            "mode",
            string(if o.validate_only { "Validate" } else { "Serve" }),
        ),
        (
            "disable_hot_restart",
            o.tolerated.disable_hot_restart.to_string(),
        ),
        ("enable_mutex_tracing", "false".into()),
        ("restart_epoch", o.restart_epoch.to_string()),
        ("cpuset_threads", o.tolerated.cpuset_threads.to_string()),
        ("disabled_extensions", "[]".into()),
        ("enable_fine_grain_logging", "false".into()),
        ("socket_path", string("")),
        ("socket_mode", "0".into()),
        ("enable_core_dump", o.tolerated.enable_core_dump.to_string()),
        ("stats_tag", "[]".into()),
    ];
    let count = entries.len();
    for (n, (name, value)) in entries.iter().enumerate() {
        field(&mut out, i, name, value, n + 1 == count);
    }
    out.push_str(" },\n");
    out.push_str(" \"node\": {\n");
    let node: Vec<(&str, String)> = vec![
        ("id", string(&o.tolerated.service_node)),
        ("cluster", string(&o.tolerated.service_cluster)),
        ("user_agent_name", string("ringway")),
        ("user_agent_version", string(env!("CARGO_PKG_VERSION"))),
    ];
    let count = node.len();
    for (n, (name, value)) in node.iter().enumerate() {
        field(&mut out, i, name, value, n + 1 == count);
    }
    out.push_str(" },\n");
    field(
        &mut out,
        " ",
        "uptime_current_epoch",
        &string(&format!("{uptime}s")),
        false,
    );
    field(
        &mut out,
        " ",
        "uptime_all_epochs",
        &string(&format!("{uptime}s")),
        true,
    );
    out.push_str("}\n");
    out
}
