//! `tollgate plan`: workers needed and finish time for a backlog under a rate and deadline.

use std::process::ExitCode;

use anyhow::Context;
use tollgate_queue::plan::{Plan, PlanInput, plan};
use tollgate_queue::{format_duration, parse_duration};

/// Exit status when the deadline cannot be met.
const EXIT_INFEASIBLE: u8 = 1;

/// Flags of `tollgate plan`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 the deadline can be met (or none was given), 1 it cannot, 2 bad input.

Example:
  tollgate plan --tasks 108 --rate 20/min --service-time 10s --deadline 3m --max-workers 10")]
pub struct Args {
    /// Tasks to run.
    #[arg(long)]
    tasks: u64,
    /// The queue's rate, like 20/min.
    #[arg(long)]
    rate: String,
    /// The queue's burst (default: strict).
    #[arg(long)]
    burst: Option<u64>,
    /// How long one task takes, like 10s.
    #[arg(long)]
    service_time: String,
    /// Time available from now, like 3m.
    #[arg(long)]
    deadline: Option<String>,
    /// The most workers allowed.
    #[arg(long, default_value_t = 10)]
    max_workers: u32,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

/// A span for people: `5min 31s`, `1h 2min 0.5s`, `12.3s`.
fn ms(ms: u64) -> String {
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = rest as f64 / 1000.0;
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}min"));
    }
    if rest > 0 || parts.is_empty() {
        parts.push(if rest % 1000 == 0 {
            format!("{secs:.0}s")
        } else {
            format!("{secs:.1}s")
        });
    }
    parts.join(" ")
}

/// Runs `tollgate plan`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let input = PlanInput {
        tasks: args.tasks,
        rate: args.rate.parse()?,
        burst: args.burst,
        service_time: parse_duration(&args.service_time).context("--service-time")?,
        deadline: args
            .deadline
            .as_deref()
            .map(|d| parse_duration(d).context("--deadline"))
            .transpose()?,
        max_workers: args.max_workers,
    };
    let p = plan(&input)?;
    if args.json {
        println!("{:#}", serde_json::to_value(&p)?);
    } else {
        println!("{}", describe(&input, &p));
    }
    Ok(if p.feasible {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INFEASIBLE)
    })
}

fn describe(input: &PlanInput, p: &Plan) -> String {
    let mut out = format!(
        "{} tasks at {} ({} each), up to {} workers:\n",
        input.tasks,
        input.rate,
        format_duration(input.service_time),
        input.max_workers
    );
    if p.feasible {
        out += &format!(
            "  feasible: run {} workers; done in {}",
            p.workers,
            ms(p.finish_ms)
        );
        if let Some(d) = input.deadline {
            out += &format!(" (deadline {})", format_duration(d));
        }
        out += &format!(
            "\n  {} workers keep up with the rate; the earliest finish is {}",
            p.workers_for_rate,
            ms(p.earliest_finish_ms)
        );
        return out;
    }
    let deadline = input.deadline.map(format_duration).unwrap_or_default();
    out += &format!(
        "  INFEASIBLE: the deadline {deadline} cannot be met. The earliest finish is {} with {} workers.\n",
        ms(p.earliest_finish_ms),
        p.workers
    );
    if let Some(w) = p.workers_needed {
        out += &format!("  {w} workers would meet it at this rate (raise --max-workers).\n");
    }
    match &p.rate_needed {
        Some(rate) => {
            out += &format!(
                "  A rate of {rate} or more would meet it with {} workers.\n",
                input.max_workers
            )
        }
        None => out += "  No rate would meet it: the deadline is shorter than the work itself.\n",
    }
    if let Some(d) = p.deadline_needed_ms {
        out += &format!("  At this rate, a deadline of {} or more works.", ms(d));
    }
    out.trim_end().to_string()
}
