//! Worker processes on one Redis queue: the global limit holds across processes, and
//! `kill -9` of workers loses no task.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_testkit::redis::RedisServer;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

fn queue(url: &str, args: &[&str]) -> Value {
    let out = Command::new(bin())
        .arg("queue")
        .args(args)
        .arg("--json")
        .env("TOLLGATE_STORE", url)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn worker(url: &str, name: &str, cmd: &str, extra: &[&str]) -> Child {
    Command::new(bin())
        .args(["worker", name, "--exec", cmd, "--log", "warn"])
        .args(extra)
        .env("TOLLGATE_STORE", url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker")
}

/// One line a start: "<start µs on Redis's clock> <task id>".
fn starts(dir: &Path) -> Vec<(u64, String)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        for line in text.lines() {
            let (us, id) = line.split_once(' ').expect("a start line");
            all.push((us.parse().expect("µs"), id.to_string()));
        }
    }
    all.sort();
    all
}

/// Three worker processes share a strict 5/1s queue for over 20 s: every start is recorded,
/// no two starts are closer than T = 200 ms on Redis's clock (CONTRACT `strict`: at most
/// 1 + floor(t / T) in any interval t), and throughput is at least 98% of the rate.
#[test]
fn three_worker_processes_share_one_strict_limit() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let dir = tempfile::tempdir().expect("dir");
    queue(&url, &["create", "5/1s", "--name", "paced"]);
    let total = 110;
    for n in 0..total {
        queue(&url, &["push", "paced", &n.to_string()]);
    }
    // Each worker process writes its own file: appends from different processes never mix.
    let mut workers: Vec<Child> = (0..3)
        .map(|w| {
            let cmd = format!(
                "echo \"$TOLLGATE_STARTED_US $TOLLGATE_TASK\" >> {}/w{w}",
                dir.path().display()
            );
            worker(&url, "paced", &cmd, &["--concurrency", "2"])
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    // The fleet `show` reports: the most processes and slots seen at once.
    let mut fleet = (0, 0);
    loop {
        let shown = queue(&url, &["show", "paced"]);
        let workers = &shown["workers"];
        let now = (workers["processes"].as_u64(), workers["slots"].as_u64());
        fleet = fleet.max((now.0.unwrap_or(0), now.1.unwrap_or(0)));
        if shown["completed"].as_u64() >= Some(total) {
            break;
        }
        assert!(Instant::now() < deadline, "not done in 40 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(fleet, (3, 6), "show's workers: 3 processes of 2 slots");
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let starts = starts(dir.path());
    assert_eq!(starts.len() as u64, total, "every start recorded once");
    let ids: HashSet<&String> = starts.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len() as u64, total);
    for pair in starts.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= 200_000,
            "two starts {gap} µs apart: under T = 200 ms"
        );
    }
    let span_s = (starts[starts.len() - 1].0 - starts[0].0) as f64 / 1e6;
    assert!(span_s >= 20.0, "ran {span_s} s");
    let rate = (starts.len() - 1) as f64 / span_s;
    eprintln!("{} starts over {span_s:.3} s: {rate:.4}/s", starts.len());
    assert!(
        rate >= 0.98 * 5.0,
        "throughput {rate:.3}/s is under 98% of 5/s"
    );
    let workers_used: HashSet<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        workers_used.len(),
        3,
        "all three processes took tasks: {workers_used:?}"
    );
}

/// Workers are killed with SIGKILL at random while 1,200 tasks run; new ones take their
/// place. Every task ends completed or dead-lettered: none is lost.
#[test]
fn workers_killed_at_random_lose_no_task() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let dir = tempfile::tempdir().expect("dir");
    queue(
        &url,
        &[
            "create",
            "400/1s",
            "--name",
            "crashy",
            "--burst",
            "20",
            "--visibility-timeout",
            "1s",
            "--max-attempts",
            "10",
            "--backoff",
            "10ms",
            "--backoff-max",
            "100ms",
        ],
    );
    let total: u64 = 1200;
    let pushed = queue(&url, &["test", "crashy", &total.to_string()]);
    assert_eq!(pushed["pushed"].as_u64(), Some(total));
    let done = dir.path().join("done");
    std::fs::create_dir(&done).expect("mkdir");
    // A task sleeps a little, then leaves a file named by its id (at-least-once: a task may
    // run twice if its worker died after the work but before the ack).
    let cmd = format!("sleep 0.01; touch {}/$TOLLGATE_TASK", done.display());
    let spawn = || worker(&url, "crashy", &cmd, &["--concurrency", "4"]);
    let mut workers: Vec<Child> = (0..3).map(|_| spawn()).collect();
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = queue(&url, &["show", "crashy"]);
        let finished = s["completed"].as_u64().unwrap_or(0) + s["dead"].as_u64().unwrap_or(0);
        if finished == total && s["in_flight"] == 0 && s["waiting"] == 0 && s["delayed"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not finished: {s}");
        std::thread::sleep(Duration::from_millis(fastrand::u64(150..500)));
        if kills < 12 && finished < total * 9 / 10 {
            let victim = fastrand::usize(0..workers.len());
            let _ = workers[victim].kill(); // SIGKILL
            let _ = workers[victim].wait();
            workers[victim] = spawn();
            kills += 1;
        }
    }
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert!(kills >= 5, "only {kills} kills");
    let s = queue(&url, &["show", "crashy"]);
    let dead: HashSet<String> = queue(&url, &["dead", "crashy", "--limit", "5000"])["dead"]
        .as_array()
        .expect("dead")
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect();
    let ran: HashSet<String> = std::fs::read_dir(&done)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let all: HashSet<String> = (1..=total).map(|n| format!("{n:016}")).collect();
    let ended: HashSet<String> = ran.union(&dead).cloned().collect();
    assert_eq!(ended, all, "every task ran to completion or is dead");
    assert_eq!(
        s["completed"].as_u64().unwrap_or(0) + s["dead"].as_u64().unwrap_or(0),
        total
    );
    assert!(
        s["lost"].as_u64() > Some(0),
        "no lease was ever lost: the kills hit nothing: {s}"
    );
}
