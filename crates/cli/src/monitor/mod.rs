//! `tollgate monitor`: watch a running `tollgate serve` through `GET /v1/stats`, live in the
//! terminal (ratatui) or as one plain-text report (`--once`).
//!
//! Fetching ([`fetch`]) and drawing ([`view`]) are kept apart: the terminal loop ([`tui`])
//! feeds reports into a [`state::State`], and `view::draw` is a pure function of that state,
//! so the tests render it on ratatui's `TestBackend`.

mod fetch;
#[cfg(test)]
mod fixture;
mod format;
mod state;
mod tables;
mod text;
mod tui;
mod view;
#[cfg(test)]
mod view_tests;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

/// The shortest `--interval`: a monitor should not load the server it watches.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The exit status of `--once` when the server cannot be read.
const EXIT_UNREADABLE: u8 = 1;

/// Flags of `tollgate monitor`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Keys: Tab / Shift-Tab or 1-4 switch views (overview & policies, queues, store & alerts,
controllers); Up/Down select a policy (its top denied keys are listed); r refreshes now;
q, Esc or Ctrl-C quit.

Exit status: 0 done; 1 with --once when the server cannot be reached or answers something
other than a stats report (the reason is printed on stderr); 2 on bad flags.

Examples:
  tollgate monitor
  tollgate monitor --server http://limits:8080 --interval 500ms
  tollgate monitor --once
  tollgate monitor --once --json | jq .decisions")]
pub struct Args {
    /// The server's base URL.
    #[arg(
        long,
        value_name = "URL",
        env = "TOLLGATE_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,

    /// The server's admin bearer token, when its config sets `admin_token`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOLLGATE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// How often to read the server, like 2s or 500ms (at least 100ms).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Print one plain-text report and exit (exit 1 if the server cannot be read).
    #[arg(long)]
    pub once: bool,

    /// With --once: print the server's stats JSON as it came.
    #[arg(long, requires = "once")]
    pub json: bool,

    /// Give up on one read of the server after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
}

/// Parses `--interval`: the duration grammar of the queue commands, at least [`MIN_INTERVAL`].
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = tollgate_queue::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < MIN_INTERVAL {
        return Err(format!(
            "{text:?} is too short: the interval must be at least {} ms",
            MIN_INTERVAL.as_millis()
        ));
    }
    Ok(interval)
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let client = fetch::StatsClient::new(
        &args.server,
        args.token.clone(),
        Duration::from_millis(args.timeout_ms),
    )?;
    if args.once {
        return once(&client, args.json);
    }
    tui::run(client, args.interval)
}

/// `--once`: one read, one report.
fn once(client: &fetch::StatsClient, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let fetched = match runtime.block_on(client.fetch()) {
        Ok(fetched) => fetched,
        Err(err) => {
            // Not through `main`'s error path: that exits 2, and scripts tell "server
            // unreadable" (1) from "bad flags" (2).
            let _ = writeln!(std::io::stderr().lock(), "error: {err}");
            return Ok(ExitCode::from(EXIT_UNREADABLE));
        }
    };
    let out = if json {
        fetched.raw
    } else {
        text::report(&fetched.report, client.base())
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", out.trim_end()) {
        // `| head` read what it wanted: that is success, not an error to report.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        result => {
            result.context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_like_queue_durations() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1min"), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn bad_intervals_say_what_was_wrong() {
        let err = parse_interval("2x").expect_err("unknown unit");
        assert!(err.contains("\"2x\""), "{err}");
        let err = parse_interval("10ms").expect_err("too short");
        assert!(err.contains("at least 100 ms"), "{err}");
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("").is_err());
    }
}
