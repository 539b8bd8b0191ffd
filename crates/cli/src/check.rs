//! `tollgate check`: ask a running server for a decision.

use std::process::ExitCode;

/// Flags of `tollgate check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key to check.
    pub key: String,
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("check is not built yet ({})", args.key)
}
