//! `tollgate config …`.

use std::process::ExitCode;

/// Config subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs a config subcommand.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match *command {}
}
