//! `tollgate config …`: check a config file, or print the commented example.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tollgate_server::Config;

/// The commented example config, as shipped in the repository.
const EXAMPLE: &str = include_str!("../../../tollgate.example.yaml");

/// Config subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a config file and explain what it sets up. Exit 0 valid, 2 invalid.
    Check {
        /// The YAML file.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a commented example config.
    Example,
}

/// Runs a config subcommand.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Example => {
            out.write_all(EXAMPLE.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { file, json } => match Config::load(file) {
            Ok(config) => {
                if *json {
                    serde_json::to_writer(&mut out, &summary(&config, file))?;
                    writeln!(out)?;
                } else {
                    explain(&mut out, &config, file)?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                if *json {
                    let body =
                        serde_json::json!({"valid": false, "file": file, "problems": e.problems});
                    serde_json::to_writer(&mut out, &body)?;
                    writeln!(out)?;
                } else {
                    let _ = writeln!(std::io::stderr().lock(), "{e}");
                }
                Ok(ExitCode::from(2))
            }
        },
    }
}

fn summary(config: &Config, file: &std::path::Path) -> serde_json::Value {
    let policies: serde_json::Map<String, serde_json::Value> = config
        .policies
        .values()
        .map(|p| {
            let value = serde_json::json!({
                "rate": p.limit.rate().to_string(),
                "algorithm": p.limit.algorithm().name(),
                "burst": p.limit.burst(),
                "limit": p.limit.capacity(),
                "description": p.description,
            });
            (p.name.clone(), value)
        })
        .collect();
    serde_json::json!({
        "valid": true,
        "file": file,
        "http": config.http.to_string(),
        "grpc": config.grpc.map(|a| a.to_string()),
        "store": config.store,
        "admin_token": config.admin_token.is_some(),
        "max_keys": config.max_keys,
        "policies": policies,
        "envoy_domains": config.envoy.domains(),
    })
}

fn explain(out: &mut impl Write, config: &Config, file: &std::path::Path) -> std::io::Result<()> {
    writeln!(out, "{}: valid", file.display())?;
    writeln!(out, "  HTTP on {}", config.http)?;
    match config.grpc {
        Some(a) => writeln!(out, "  Envoy gRPC on {a}")?,
        None => writeln!(out, "  no gRPC (add `grpc:` or pass --grpc)")?,
    }
    writeln!(
        out,
        "  store: {} (at most {} keys)",
        config.store, config.max_keys
    )?;
    let auth = if config.admin_token.is_some() {
        "need the bearer token"
    } else {
        "are open: set admin_token"
    };
    writeln!(out, "  admin endpoints {auth}")?;
    if config.policies.is_empty() {
        writeln!(out, "  no policies: checks must give a rate")?;
    }
    for p in config.policies.values() {
        let l = &p.limit;
        let burst = if l.burst() != l.rate().count() {
            format!(", burst {}", l.burst())
        } else {
            String::new()
        };
        writeln!(
            out,
            "  policy {:?}: {} {}{burst} — at most {} at once",
            p.name,
            l.rate(),
            l.algorithm(),
            l.capacity()
        )?;
    }
    for domain in config.envoy.domains() {
        writeln!(out, "  Envoy domain {domain:?}")?;
    }
    Ok(())
}
