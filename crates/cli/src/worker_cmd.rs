//! `tollgate worker`: run tasks from queues with a command (`--exec`) or a webhook
//! (`--webhook`), as fast as the queues' limits allow, with a fixed or autoscaled count.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_queue::worker::{JobError, Worker};
use tollgate_queue::{Lease, QueueStore, millis, parse_duration};
use tollgate_server::shutdown_signal;

use crate::queue::target::Target;

/// Flags of `tollgate worker`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("handler").required(true).args(["exec", "webhook"])),
    after_help = "\
--exec runs CMD with `sh -c`, the payload on stdin and TOLLGATE_QUEUE, TOLLGATE_TASK and
TOLLGATE_ATTEMPT (and TOLLGATE_STARTED_US, the start on the store's clock) in its environment: exit 0 is done, any other exit (or --timeout) a failed
attempt, retried with backoff and dead-lettered after the queue's max attempts.
--webhook POSTs the payload (content-type application/json, headers X-Tollgate-Queue,
X-Tollgate-Task, X-Tollgate-Attempt): 2xx is done; 429 and 5xx fail the attempt and honour
Retry-After (seconds or an HTTP date); other answers, timeouts and refused connections fail it
too.
Delivery is at-least-once: a task whose worker dies runs again after its visibility timeout.

Exit status: 0 after SIGTERM/Ctrl-C (or --until-empty), 2 on bad flags or an unknown queue.

Examples:
  tollgate worker emails --exec './send-email.sh' --concurrency 4
  tollgate worker audit --webhook http://localhost:9000/audit --min-workers 1 --max-workers 10 --deadline 3m")]
pub struct Args {
    /// The queues to take tasks from (tried in turn).
    #[arg(required = true, value_name = "QUEUE")]
    queues: Vec<String>,
    /// Run each task with this shell command.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// POST each task to this URL.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Give up on an attempt after this long, like 30s.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Tasks run at once (without autoscaling).
    #[arg(long, default_value_t = 1, conflicts_with_all = ["min_workers", "max_workers"])]
    concurrency: u32,
    /// Autoscale from this many workers...
    #[arg(long, requires = "max_workers")]
    min_workers: Option<u32>,
    /// ...up to this many, from the backlog, the rate, the service time and the deadline.
    /// Worker processes on one queue share what it needs (`queue show` lists them).
    #[arg(long)]
    max_workers: Option<u32>,
    /// Aim to finish the backlog within this long from now, like 3m (else the queue's own).
    #[arg(long)]
    deadline: Option<String>,
    /// The service time assumed before the first task finishes.
    #[arg(long, default_value = "1s")]
    service_time_guess: String,
    /// Exit once every queue is empty (nothing waiting, delayed or running).
    #[arg(long)]
    until_empty: bool,
    #[command(flatten)]
    target: Target,
    /// Log filter, as RUST_LOG.
    #[arg(long, env = "RUST_LOG", default_value = "info", value_name = "FILTER")]
    log: String,
}

/// Runs `tollgate worker` until a signal (or until the queues are empty).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    let timeout = parse_duration(&args.timeout).context("--timeout")?;
    let guess = parse_duration(&args.service_time_guess).context("--service-time-guess")?;
    let deadline = args
        .deadline
        .as_deref()
        .map(|d| parse_duration(d).context("--deadline"))
        .transpose()?;
    if let Some(cmd) = &args.exec {
        check_program(cmd)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = args.target.open().await?;
        let mut worker = match (&args.exec, &args.webhook) {
            (Some(cmd), _) => {
                let cmd: Arc<str> = cmd.as_str().into();
                Worker::new(store.clone(), args.queues.clone(), move |lease: Lease| {
                    exec(cmd.clone(), lease, timeout)
                })
            }
            (None, Some(url)) => {
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .build()
                    .context("cannot build the HTTP client")?;
                let url: Arc<str> = url.as_str().into();
                Worker::new(store.clone(), args.queues.clone(), move |lease: Lease| {
                    webhook(client.clone(), url.clone(), lease)
                })
            }
            (None, None) => bail!("give --exec CMD or --webhook URL"),
        };
        worker = match (args.min_workers, args.max_workers) {
            (min, Some(max)) => worker.autoscale(min.unwrap_or(1), max),
            _ => worker.concurrency(args.concurrency),
        };
        if let Some(d) = deadline {
            worker = worker.deadline_ms(now_ms().saturating_add(millis(d)));
        }
        worker = worker.service_time_guess(guess);
        let queues = args.queues.clone();
        let stop = async move {
            if args.until_empty {
                tokio::select! {
                    () = shutdown_signal() => {}
                    () = all_empty(store, queues) => {}
                }
            } else {
                shutdown_signal().await;
            }
        };
        let report = worker.run(stop).await?;
        if args.target.json {
            println!("{:#}", serde_json::to_value(&report)?);
        } else {
            println!(
                "completed {}, retried {}, dead {}, leases lost {}",
                report.completed, report.retried, report.dead, report.lost
            );
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

async fn all_empty(store: Arc<dyn QueueStore>, queues: Vec<String>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut backlog = 0;
        for q in &queues {
            match store.stats(q).await {
                Ok(s) => backlog += s.backlog(),
                Err(_) => backlog += 1,
            }
        }
        if backlog == 0 {
            return;
        }
    }
}

/// Refuses at start a command whose program is not there, rather than dead-lettering every
/// task with "not found". Commands with shell syntax are left to the shell.
fn check_program(cmd: &str) -> anyhow::Result<()> {
    let Some(program) = cmd.split_whitespace().next() else {
        bail!("--exec: the command is empty");
    };
    if program.contains(['$', '(', '`', '=', ';', '|', '&', '<', '>']) {
        return Ok(());
    }
    let builtin = [
        "cd", "echo", "exit", "true", "false", "test", "[", "printf", "read", "exec",
    ];
    let found = builtin.contains(&program)
        || if program.contains('/') {
            Path::new(program).is_file()
        } else {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
            })
        };
    if !found {
        bail!("--exec: the program {program:?} does not exist (not a file, nor on PATH)");
    }
    Ok(())
}

async fn exec(cmd: Arc<str>, lease: Lease, timeout: Duration) -> Result<(), JobError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&*cmd)
        .env("TOLLGATE_QUEUE", &lease.queue)
        .env("TOLLGATE_TASK", &lease.task)
        .env("TOLLGATE_ATTEMPT", lease.attempt.to_string())
        .env("TOLLGATE_STARTED_US", lease.started_us.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| JobError::new(format!("cannot start `sh -c {cmd}`: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input closes the pipe: not a failure.
        let _ = stdin.write_all(lease.payload.as_bytes()).await;
    }
    let mut stderr = child.stderr.take();
    let run = async {
        let mut err = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err).await;
        }
        (child.wait().await, err)
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(JobError::new(format!(
            "timed out after {} ms",
            millis(timeout)
        ))),
        Ok((Err(e), _)) => Err(JobError::new(format!(
            "waiting for the command failed: {e}"
        ))),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), err)) => {
            let text = String::from_utf8_lossy(&err);
            let tail: String = text
                .trim()
                .chars()
                .rev()
                .take(500)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(JobError::new(format!("{status}: {tail}")))
        }
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): whole seconds, or an HTTP date (a date already
/// past is no wait). Anything else is `None`: the queue's backoff applies.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

async fn webhook(client: reqwest::Client, url: Arc<str>, lease: Lease) -> Result<(), JobError> {
    let response = client
        .post(&*url)
        .header("content-type", "application/json")
        .header("x-tollgate-queue", &lease.queue)
        .header("x-tollgate-task", &lease.task)
        .header("x-tollgate-attempt", lease.attempt.to_string())
        .body(lease.payload)
        .send()
        .await
        .map_err(|e| JobError::new(format!("POST {url}: {e}")))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let message = format!("POST {url}: HTTP {status}");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    match retry_after {
        Some(delay) if status.as_u16() == 429 || status.is_server_error() => {
            Err(JobError::retry_after(message, delay))
        }
        _ => Err(JobError::new(message)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::retry_after;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        // An HTTP date has whole seconds: 10 s ahead is a wait of 9 to 10 s.
        let ahead = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
        let wait = retry_after(&ahead).expect("an HTTP date");
        assert!(
            (9..=10).contains(&wait.as_secs()),
            "{ahead}: waits {wait:?}"
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date past is no wait"
        );
        for bad in ["", "soon", "-5", "1.5", "Wed, 21 Oct 2015"] {
            assert_eq!(retry_after(bad), None, "{bad:?}");
        }
    }
}
