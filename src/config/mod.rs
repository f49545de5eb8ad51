//! Configuration: native YAML with errors that say exactly where and what.
//!
//! ```text
//! config/ringway.yaml:14:18: listeners[0].routes[2].cluster: unknown cluster "orderz"; did you mean `orders`?
//! ```
//!
//! Design: no serde. A small typed decoder ([`node`]) walks saphyr's span-annotated tree
//! and carries the field path, so every error has file, line, column and path; decoding
//! goes on after an error so that all problems (up to [`error::MAX_ERRORS`]) are reported
//! in one go, sorted by position. The pipeline is
//! `yaml` (text -> tree) -> `decode` (tree -> model, per section) -> `validate`
//! (cross-references). Nothing panics on any input: the module is fuzzed.
//!
//! The format is documented by example in `config/reference.yaml`.

mod addr;
mod decode;
pub mod error;
mod model;
mod node;
mod suggest;
pub mod units;
mod validate;
mod yaml;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use model::{
    Cluster, Config, DirectResponse, DriverChoice, Endpoint, Http1Settings, Listener, PinWorkers,
    Route, RouteAction, RouteMatch, Workers,
};

use error::Diagnostics;

impl Config {
    /// Reads and parses a config file. A read failure is reported as a single error at
    /// line 0 (the file as a whole).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Config::parse(&text, path),
                Err(e) => {
                    let error = e.utf8_error();
                    let (line, column) = position_of_byte(e.as_bytes(), error.valid_up_to());
                    Err(ConfigErrors(vec![ConfigError {
                        file: path.to_path_buf(),
                        line,
                        column,
                        path: String::new(),
                        message: "the file is not valid UTF-8".to_owned(),
                    }]))
                }
            },
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read config file: {e}"),
            }])),
        }
    }

    /// Parses config text; `source` names it in errors (use `"<inline>"` for strings).
    pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigErrors> {
        let mut diag = Diagnostics::new(source);
        let Some(tree) = yaml::load(text, &mut diag) else {
            return Err(diag.finish());
        };
        let root = node::Node::root(&tree);
        let mut marks = decode::Marks::default();
        let config = decode::config(&root, source, &mut diag, &mut marks);
        validate::check(&marks, &mut diag);
        match config {
            Some(config) if !diag.has_errors() => Ok(config),
            _ => Err(diag.finish()),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset`, for the UTF-8 error.
fn position_of_byte(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    // Everything before `offset` is valid UTF-8 (that is what `valid_up_to` means).
    let text = String::from_utf8_lossy(before);
    let line = text.matches('\n').count() + 1;
    let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
