//! `tollgate queue …`: make, inspect, change and feed rate-limited queues.

mod show;
pub mod target;

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::json;
use tollgate_queue::{NewTask, QueueSpec, QueueStore, QueueUpdate, millis, parse_duration};

use target::Target;

/// Flags of `tollgate queue`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 done, 2 error (bad input, unknown queue, store or server unreachable).

Examples:
  tollgate queue create 5/60s --name emails
  tollgate queue push emails '{\"to\":\"a@example.com\"}' --priority 5
  tollgate queue show emails --json
  TOLLGATE_STORE=redis://127.0.0.1:6379 tollgate queue list")]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

/// The queue subcommands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make a queue; prints its name (default batch_<uuid4>).
    Create {
        /// Starts allowed per period, across every worker: COUNT/PERIOD like 5/60s.
        rate: String,
        /// The queue's name (letters, digits, _ - . :).
        #[arg(long)]
        name: Option<String>,
        /// Starts allowed at once (default: strict spacing, no bursts).
        #[arg(long)]
        burst: Option<u64>,
        /// Attempts before a task is dead-lettered.
        #[arg(long, default_value_t = 3)]
        max_attempts: u32,
        /// How long a worker holds a task without a heartbeat, like 30s.
        #[arg(long, default_value = "30s")]
        visibility_timeout: String,
        /// Remove the queue after it has been idle and empty this long (0s: never).
        #[arg(long, default_value = "1h")]
        idle_expiry: String,
        /// The first retry's delay (doubling each attempt, with jitter).
        #[arg(long, default_value = "1s")]
        backoff: String,
        /// The longest retry delay.
        #[arg(long, default_value = "5min")]
        backoff_max: String,
        /// Finish the backlog within this long from now, like 3m (shown by `show`, used
        /// by autoscaling workers).
        #[arg(long)]
        deadline: Option<String>,
    },
    /// List the queues.
    List,
    /// A queue's settings, tasks by state and priority, rate, next token and throughput.
    Show {
        /// The queue.
        name: String,
    },
    /// Change a queue's rate, live.
    Update {
        /// The queue.
        name: String,
        /// The new rate.
        rate: String,
        /// A new burst (default: keep the current one).
        #[arg(long, conflicts_with = "strict")]
        burst: Option<u64>,
        /// Back to strict spacing.
        #[arg(long)]
        strict: bool,
    },
    /// Stop starting tasks (the queue keeps them).
    Deactivate {
        /// The queue.
        name: String,
    },
    /// Start tasks again.
    Activate {
        /// The queue.
        name: String,
    },
    /// Delete a queue and all its tasks.
    Remove {
        /// The queue.
        name: String,
    },
    /// Drop the tasks waiting and delayed (not those running, not the dead).
    Clear {
        /// The queue.
        name: String,
    },
    /// Add a task: its payload is JSON (`-` reads it from stdin), at most 1 MiB.
    Push {
        /// The queue.
        name: String,
        /// The payload, JSON.
        payload: String,
        /// Higher runs first (0 ..= 1000000).
        #[arg(long, default_value = "0", allow_hyphen_values = true)]
        priority: String,
        /// Wait this long before it may run, like 10s.
        #[arg(long, allow_hyphen_values = true)]
        delay: Option<String>,
    },
    /// Push COUNT sample tasks ({"test": n}).
    Test {
        /// The queue.
        name: String,
        /// How many.
        count: u64,
    },
    /// The dead-letter queue: list it (default), retry tasks, or purge it.
    Dead {
        /// The queue.
        name: String,
        /// Put dead tasks back in the queue: the ids given, or all.
        #[arg(long, num_args = 0.., value_name = "ID", conflicts_with = "purge")]
        retry: Option<Vec<String>>,
        /// Delete the dead tasks.
        #[arg(long)]
        purge: bool,
        /// List at most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

/// Runs `tollgate queue`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = args.target.open().await?;
        execute(&*store, args.command, args.target.json).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    parse_duration(text).with_context(|| format!("--{flag}"))
}

fn priority(text: &str) -> anyhow::Result<u32> {
    match text.parse::<i64>() {
        Ok(p) if p < 0 => bail!("--priority {p}: a priority is 0 or more (higher runs first)"),
        Ok(p) => u32::try_from(p).with_context(|| format!("--priority {p} is too large")),
        Err(_) => bail!("--priority {text:?}: expected a whole number 0 ..= 1000000"),
    }
}

fn print(json: bool, value: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value:#}");
    } else {
        println!("{}", text());
    }
}

async fn execute(store: &dyn QueueStore, command: Command, json: bool) -> anyhow::Result<()> {
    match command {
        Command::Create {
            rate,
            name,
            burst,
            max_attempts,
            visibility_timeout,
            idle_expiry,
            backoff,
            backoff_max,
            deadline,
        } => {
            let mut spec = QueueSpec::new(rate.parse()?)
                .max_attempts(max_attempts)
                .visibility_timeout(duration("visibility-timeout", &visibility_timeout)?)
                .idle_expiry(duration("idle-expiry", &idle_expiry)?)
                .backoff(
                    duration("backoff", &backoff)?,
                    duration("backoff-max", &backoff_max)?,
                );
            spec.name = name;
            spec.burst = burst;
            if let Some(d) = deadline {
                spec.deadline_ms = Some(now_ms().saturating_add(millis(duration("deadline", &d)?)));
            }
            let made = store.create(spec).await?;
            print(json, serde_json::to_value(&made)?, || made.name.clone());
        }
        Command::List => {
            let queues = store.list().await?;
            print(json, json!({ "queues": queues }), || show::table(&queues));
        }
        Command::Show { name } => {
            let stats = store.stats(&name).await?;
            print(json, show::json(&stats), || show::report(&stats));
        }
        Command::Update {
            name,
            rate,
            burst,
            strict,
        } => {
            let update = QueueUpdate {
                rate: Some(rate.parse()?),
                burst: if strict { Some(None) } else { burst.map(Some) },
                ..QueueUpdate::default()
            };
            let stats = store.update(&name, update).await?;
            print(json, serde_json::to_value(&stats)?, || {
                format!("{name}: rate {}", stats.rate)
            });
        }
        Command::Deactivate { name } => set_active(store, &name, false, json).await?,
        Command::Activate { name } => set_active(store, &name, true, json).await?,
        Command::Remove { name } => {
            let removed = store.remove(&name).await?;
            if !removed {
                bail!("unknown queue {name:?}");
            }
            print(json, json!({ "removed": name }), || {
                format!("removed {name}")
            });
        }
        Command::Clear { name } => {
            let n = store.clear(&name).await?;
            print(json, json!({ "cleared": n }), || {
                format!("cleared {n} tasks from {name}")
            });
        }
        Command::Push {
            name,
            payload,
            priority: p,
            delay,
        } => {
            let payload = if payload == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the payload from stdin")?;
                text
            } else {
                payload
            };
            let mut task = NewTask::json(payload.trim())?.priority(priority(&p)?);
            if let Some(d) = delay {
                task = task.delay(duration("delay", &d)?);
            }
            let id = store.push(&name, task).await?;
            print(json, json!({ "id": id }), || id.clone());
        }
        Command::Test { name, count } => {
            for n in 0..count {
                store
                    .push(&name, NewTask::json(format!(r#"{{"test":{n}}}"#))?)
                    .await?;
                if !json && count >= 1000 && (n + 1) % 1000 == 0 {
                    eprintln!("pushed {} of {count}", n + 1);
                }
            }
            print(json, json!({ "pushed": count }), || {
                format!("pushed {count} tasks to {name}")
            });
        }
        Command::Dead {
            name,
            retry,
            purge,
            limit,
        } => {
            if purge {
                let n = store.purge_dead(&name).await?;
                print(json, json!({ "purged": n }), || {
                    format!("purged {n} dead tasks")
                });
            } else if let Some(ids) = retry {
                let n = store.retry_dead(&name, &ids).await?;
                print(json, json!({ "retried": n }), || {
                    format!("{n} dead tasks back in {name}")
                });
            } else {
                let dead = store.dead(&name, limit).await?;
                print(json, json!({ "dead": dead }), || show::dead(&dead));
            }
        }
    }
    Ok(())
}

async fn set_active(
    store: &dyn QueueStore,
    name: &str,
    active: bool,
    json: bool,
) -> anyhow::Result<()> {
    let update = QueueUpdate {
        active: Some(active),
        ..QueueUpdate::default()
    };
    let stats = store.update(name, update).await?;
    let word = if active { "active" } else { "paused" };
    print(json, serde_json::to_value(&stats)?, || {
        format!("{name}: {word}")
    });
    Ok(())
}
