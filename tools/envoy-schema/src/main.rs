//! Writes `src/config/envoy/schema.bin`: the descriptors of the Envoy v3 messages ringway's
//! Envoy loader decodes, compiled from the `.proto` files in the envoy-types package.
//!
//! The set is trimmed to the closure of [`ROOTS`] (the bootstrap and the extensions the
//! loader implements), with comments (`source_code_info`) dropped; options are kept,
//! because the loader enforces Envoy's `validate.rules` from them. Run from the
//! repository root: `cargo run --manifest-path tools/envoy-schema/Cargo.toml --release`.

use std::path::{Path, PathBuf};

/// Every file whose messages may appear in a bootstrap ringway loads: the bootstrap
/// itself, and one file per extension `@type` the loader accepts. Unlisted extensions
/// are refused by name before decoding.
const ROOTS: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/access_loggers/file/v3/file.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/http/health_check/v3/health_check.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/http/jwt_authn/v3/config.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto",
    "envoy/extensions/filters/network/local_ratelimit/v3/local_rate_limit.proto",
    "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/config/trace/v3/zipkin.proto",
    "envoy/config/trace/v3/opentelemetry.proto",
    "envoy/extensions/request_id/uuid/v3/uuid.proto",
];

/// The proto search path inside the envoy-types package.
const INCLUDES: &[&str] = &[
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec",
    "opentelemetry-proto",
    "client_model",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let package = envoy_types_dir()?;
    let proto = package.join("proto");
    let includes: Vec<PathBuf> = INCLUDES.iter().map(|i| proto.join(i)).collect();
    let mut compiler = protox::Compiler::new(&includes)?;
    // Comments are not needed; the imports are (the set must be self-contained).
    compiler.include_source_info(false).include_imports(true);
    compiler.open_files(ROOTS)?;
    // Encoded by protox itself: `file_descriptor_set()` goes through prost-types,
    // which drops the options' extension fields (the `validate.rules` the loader reads).
    let bytes = compiler.encode_file_descriptor_set();
    let out = Path::new("src/config/envoy/schema.bin");
    std::fs::write(out, &bytes)?;
    println!(
        "{}: {} files, {} bytes (envoy-types {})",
        out.display(),
        compiler.files().len(),
        bytes.len(),
        package.display()
    );
    Ok(())
}

/// Where cargo unpacked the envoy-types package this tool depends on.
fn envoy_types_dir() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()?;
    let text = String::from_utf8(output.stdout)?;
    // The manifest path of the envoy-types package, without a JSON parser: the one
    // `"manifest_path":"…/envoy-types-<version>/Cargo.toml"` in the output.
    let manifest = text
        .split("\"manifest_path\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|path| path.contains("/envoy-types-"))
        .ok_or("envoy-types not found in cargo metadata")?;
    Ok(Path::new(manifest)
        .parent()
        .ok_or("manifest without a directory")?
        .to_path_buf())
}
