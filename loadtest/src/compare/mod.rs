//! `ringway-load compare` (stub).
use clap::Args;

#[derive(Debug, Args)]
pub struct CompareArgs {}

pub fn compare(_args: CompareArgs) -> Result<(), String> {
    Err("not yet".into())
}
