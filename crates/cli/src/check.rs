//! `tollgate check`: ask a running server for a decision (`POST /v1/check`).
//!
//! reqwest is used async on a small current-thread runtime, so the workspace needs no
//! `blocking` feature (and no second HTTP stack) for one request.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::ArgGroup;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Exit status of a denial.
const EXIT_DENIED: u8 = 1;

/// Flags of `tollgate check`.
#[derive(Debug, clap::Args)]
#[command(
    group(ArgGroup::new("limit").required(true).args(["rate", "policy"])),
    after_help = "\
Exit status: 0 allowed, 1 denied, 2 error (bad flags, server unreachable, or the server
refused the request; its error code and message are printed).

Examples:
  tollgate check user:1 --rate 100/60s --burst 20
  tollgate check user:1 --policy basic --cost 5 --json
  TOLLGATE_SERVER=http://limits:8080 tollgate check login:alice --policy login"
)]
pub struct Args {
    /// The key to check, like user:42 (1 to 1024 bytes).
    pub key: String,

    /// An inline rate COUNT/PERIOD, like 100/60s, 20/min or 10/500ms.
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,

    /// A policy named in the server's config file (instead of --rate).
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,

    /// The algorithm of an inline rate: gcra (default), strict, sliding-window or
    /// fixed-window.
    #[arg(long, value_name = "A", requires = "rate")]
    pub algorithm: Option<String>,

    /// The burst of an inline gcra rate (default COUNT).
    #[arg(long, value_name = "B", requires = "rate")]
    pub burst: Option<u64>,

    /// The units to ask for; 0 only peeks.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cost: u64,

    /// The server's base URL.
    #[arg(
        long,
        value_name = "URL",
        env = "TOLLGATE_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,

    /// Print the server's JSON answer as it came instead of a sentence.
    #[arg(long)]
    pub json: bool,

    /// Give up on the server after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
}

/// The decision fields of CONTRACT §4.
#[derive(Debug, Deserialize)]
struct Decision {
    allowed: bool,
    limit: u64,
    remaining: u64,
    retry_after_ms: u64,
    reset_after_ms: u64,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Debug, Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(check(args))
}

/// The request body: only the fields given, so the server applies its own defaults.
fn body(args: &Args) -> Value {
    let mut body = Map::new();
    body.insert("key".into(), json!(args.key));
    let optional = [
        ("rate", args.rate.as_ref().map(|v| json!(v))),
        ("policy", args.policy.as_ref().map(|v| json!(v))),
        ("algorithm", args.algorithm.as_ref().map(|v| json!(v))),
        ("burst", args.burst.map(|v| json!(v))),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            body.insert(name.into(), value);
        }
    }
    body.insert("cost".into(), json!(args.cost));
    Value::Object(body)
}

async fn check(args: &Args) -> anyhow::Result<ExitCode> {
    let base = args.server.trim_end_matches('/');
    let url = format!("{base}/v1/check");
    reqwest::Url::parse(&url).with_context(|| {
        format!(
            "--server {:?} is not a URL like http://host:8080",
            args.server
        )
    })?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .post(&url)
        .json(&body(args))
        .send()
        .await
        .with_context(|| format!("cannot reach the tollgate server at {base}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("the tollgate server at {base} broke off its answer"))?;

    if !status.is_success() {
        if args.json {
            print(&text)?;
        }
        return Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => anyhow!(
                "the server refused the check ({status}): {}: {}",
                e.error.code,
                e.error.message
            ),
            Err(_) => anyhow!(
                "the server at {base} answered {status} without a tollgate error: {}",
                text.chars().take(200).collect::<String>()
            ),
        });
    }
    let decision: Decision = serde_json::from_str(&text).with_context(|| {
        format!("the server at {base} answered something other than a decision: {text}")
    })?;
    if args.json {
        print(&text)?;
    } else if decision.allowed {
        print(&format!(
            "allowed: {} of {} remaining, full again in {} ms",
            decision.remaining, decision.limit, decision.reset_after_ms
        ))?;
    } else {
        print(&format!(
            "denied: retry after {} ms",
            decision.retry_after_ms
        ))?;
    }
    Ok(if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DENIED)
    })
}

/// Prints a line; a closed stdout (`| head`) is an error like any other, not a panic.
fn print(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line.trim_end()).context("cannot write to stdout")
}
