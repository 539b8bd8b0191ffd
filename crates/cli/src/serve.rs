//! `tollgate serve`.

/// Flags of `tollgate serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("serve is not built yet")
}
