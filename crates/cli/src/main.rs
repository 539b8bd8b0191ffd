//! The `tollgate` command.
//!
//! Each subcommand lives in its own module and exposes an `Args` struct (its flags) and a
//! `run` function; `main` only parses the command line and turns the outcome into an exit
//! code, so that adding `serve` or `check` touches nothing but the [`Command`] enum.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod config_cmd;
mod monitor;
mod plan_cmd;
mod queue;
mod replay;
mod serve;
mod worker_cmd;

/// tollgate: rate limiting with exact guarantees.
///
/// Exit status: 0 on success, 2 on a usage error or bad input.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, propagate_version = true)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// tollgate's subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (and the Envoy gRPC API with --grpc) on the embedded store.
    Serve(serve::Args),
    /// Ask a running server for a decision: exit 0 allowed, 1 denied, 2 error.
    Check(check::Args),
    /// Work with config files.
    #[command(subcommand)]
    Config(config_cmd::Command),
    /// Simulate a policy offline on recorded traffic, with a simulated clock.
    Replay(replay::Args),
    /// Rate-limited job queues: create, list, show, update, push, dead letters...
    Queue(queue::Args),
    /// Run tasks from queues with a command or a webhook, within the queues' limits.
    Worker(worker_cmd::Args),
    /// Plan a backlog: workers needed and finish time under a rate and a deadline.
    Plan(plan_cmd::Args),
    /// Watch a running server: live in the terminal, or one plain-text report (--once).
    Monitor(monitor::Args),
}

/// The exit status for any error; clap uses the same for usage errors.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Check(args) => check::run(&args),
        Command::Config(command) => config_cmd::run(&command),
        Command::Replay(args) => replay::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Queue(args) => queue::run(args),
        Command::Worker(args) => worker_cmd::run(args),
        Command::Plan(args) => plan_cmd::run(&args),
        Command::Monitor(args) => monitor::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // `eprintln!` would panic if stderr is gone; there is nobody left to tell then.
            let _ = writeln!(std::io::stderr().lock(), "error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
