//! `tollgate monitor --once` as scripts run it: against a real `tollgate serve` with real
//! traffic, against a closed port, and against servers that answer garbage; and the live view
//! in a pseudo-terminal, ended by SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Output;
use std::time::Duration;

use common::{Server, unused_address, wait_for};
use tollgate_server::stats::StatsReport;

/// `tollgate serve` with `config`, logging only warnings but for the `HTTP API listening` line
/// the port is read from.
fn start(config: &str) -> Server {
    Server::start(config, &["--log", "warn,tollgate_server::server=info"])
}

/// Asks for one decision; returns whether it was allowed.
fn check(server: &Server, body: &str) -> bool {
    let decision = server.check(body);
    decision["allowed"].as_bool().expect("allowed is a bool")
}

fn tollgate(args: &[&str]) -> Output {
    common::tollgate()
        .args(args)
        .env_remove("TOLLGATE_SERVER")
        .env_remove("TOLLGATE_TOKEN")
        .env_remove("TOLLGATE_STORE")
        .output()
        .expect("run tollgate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn line_starting<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
}

fn stats(server: &Server) -> Option<StatsReport> {
    let (status, body) = server.get("/v1/stats")?;
    (status == 200).then_some(())?;
    serde_json::from_str(&body).ok()
}

/// Traffic a test can count: policy `login` (2/min) allows 3 and denies 3, 3 of them for
/// `user:mallory`; inline 1/min allows 1 and denies 2; queue `emails` holds 5 ready tasks
/// (3 at priority 5, 2 at 0) and 1 delayed.
fn make_traffic(server: &Server) {
    let login = |key: &str| check(server, &format!(r#"{{"key":"{key}","policy":"login"}}"#));
    let mallory: Vec<bool> = (0..5).map(|_| login("user:mallory")).collect();
    assert_eq!(mallory, [true, true, false, false, false]);
    assert!(login("user:alice"));
    let inline: Vec<bool> = (0..3)
        .map(|_| check(server, r#"{"key":"k","rate":"1/min"}"#))
        .collect();
    assert_eq!(inline, [true, false, false]);

    let url = server.url();
    let queue = |args: &[&str]| {
        let mut all = vec!["queue"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &url]);
        let out = tollgate(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    queue(&["create", "1/60s", "--name", "emails"]);
    for n in 0..3 {
        queue(&["push", "emails", &n.to_string(), "--priority", "5"]);
    }
    for n in 3..5 {
        queue(&["push", "emails", &n.to_string()]);
    }
    queue(&["push", "emails", "99", "--delay", "1h"]);
}

fn traffic_server() -> Server {
    let server = start("policies:\n  login: {rate: 2/min}\n");
    make_traffic(&server);
    // The stats are sampled: wait until the snapshot has every decision in it.
    let counted = wait_for(Duration::from_secs(20), || {
        stats(&server).is_some_and(|s| {
            s.decisions.allowed_total == 4 && s.decisions.denied_total == 5 && s.queues.len() == 1
        })
    });
    assert!(counted.is_some(), "the stats never counted every decision");
    server
}

#[test]
fn once_reports_the_traffic_of_a_live_server() {
    let server = traffic_server();
    let out = tollgate(&["monitor", "--once", "--server", &server.url()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    assert!(!text.contains('\u{1b}'), "escape codes in:\n{text}");

    let header = format!(
        "tollgate {} at {}, up ",
        env!("CARGO_PKG_VERSION"),
        server.url()
    );
    assert!(text.starts_with(&header), "{text}");
    assert!(
        line_starting(&text, "decisions").ends_with("since start 4 allowed, 5 denied"),
        "{text}"
    );
    assert!(
        line_starting(&text, "store").contains("memory: ready"),
        "{text}"
    );

    let login = words(line_starting(&text, "login "));
    assert_eq!(login[login.len() - 2..], ["3", "3"], "{login:?}");
    assert_eq!(
        line_starting(&text, "top denied: user:mallory"),
        "    top denied: user:mallory 3"
    );
    let inline = words(line_starting(&text, "inline "));
    assert_eq!(inline[inline.len() - 2..], ["1", "2"], "{inline:?}");

    let emails = words(line_starting(&text, "emails "));
    assert_eq!(
        (emails[2..=8].to_vec(), emails[11]),
        (vec!["active", "5", "p5:3", "p0:2", "0", "1", "0"], "0"),
        "{emails:?}"
    );
    assert!(text.contains("controllers\n  none reporting"), "{text}");
}

#[test]
fn once_json_prints_the_stats_report() {
    let server = traffic_server();
    let out = tollgate(&["monitor", "--once", "--json", "--server", &server.url()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: StatsReport = serde_json::from_str(&stdout(&out)).expect("a stats report");
    let login = report
        .policies
        .iter()
        .find(|p| p.name == "login")
        .expect("policy login");
    assert_eq!(
        (login.decisions.allowed_total, login.decisions.denied_total),
        (3, 3)
    );
    assert_eq!(login.top_denied[0].key, "user:mallory");
    let emails = &report.queues[0];
    assert_eq!(
        (
            emails.stats.name.as_str(),
            emails.stats.waiting,
            emails.stats.delayed
        ),
        ("emails", 5, 1)
    );
}

#[test]
fn once_against_a_closed_port_exits_1_naming_the_server() {
    let closed = unused_address();
    let url = format!("http://{closed}");
    let out = tollgate(&["monitor", "--once", "--server", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the tollgate server at {url}: "
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(stdout(&out).is_empty());
}

/// A server that answers every request with `response`, as raw HTTP.
fn garbage_server(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
}

#[test]
fn once_against_garbage_exits_1_naming_the_problem() {
    let cases = [
        (
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 18\r\nconnection: close\r\n\r\n<html>hello</html>",
            "answered something that is not JSON",
            "<html>hello</html>",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"status\":\"ok\"}",
            "answered JSON that is not a tollgate stats report",
            "missing field",
        ),
        (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\nconnection: close\r\n\r\noverload",
            "answered 503 Service Unavailable to GET /v1/stats",
            "overload",
        ),
        (
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            "answered 404 Not Found",
            "without /v1/stats",
        ),
    ];
    for (response, problem, detail) in cases {
        let addr = garbage_server(response);
        let url = format!("http://{addr}");
        let out = tollgate(&["monitor", "--once", "--server", &url]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("the server at {url} {problem}")),
            "{err}"
        );
        assert!(err.contains(detail), "{err}");
    }
}

#[test]
fn bad_flags_exit_2() {
    for (args, message) in [
        (&["monitor", "--interval", "2x"][..], "\"2x\""),
        (&["monitor", "--interval", "5ms"], "at least 100 ms"),
        (
            &["monitor", "--once", "--server", "not a url"],
            "\"not a url\"",
        ),
        (&["monitor", "--json"], "--once"),
    ] {
        let out = tollgate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn the_live_view_needs_a_terminal() {
    // stdout is a pipe here: the live view refuses, rather than fill the pipe with escapes.
    let out = tollgate(&["monitor", "--server", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("use --once"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn once_sends_the_admin_token() {
    let server = start("admin_token: s3cret\npolicies:\n  login: {rate: 2/min}\n");
    let url = server.url();

    let out = tollgate(&["monitor", "--once", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("answered 401 Unauthorized"), "{err}");
    assert!(err.contains("--token or TOLLGATE_TOKEN"), "{err}");

    let out = tollgate(&["monitor", "--once", "--server", &url, "--token", "s3cret"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("tollgate "), "{}", stdout(&out));
}

/// `tollgate monitor` live, in a pseudo-terminal that `script` makes, against a server whose
/// policy `login` has decided something (so the first view lists it).
#[cfg(unix)]
struct LiveView {
    script: KillOnDrop,
    monitor: u32,
    typescript: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _server: Server,
}

#[cfg(unix)]
impl LiveView {
    /// Starts the view and waits until it has drawn the policy.
    fn start() -> LiveView {
        let server = start("policies:\n  login: {rate: 2/min}\n");
        assert!(check(&server, r#"{"key":"a","policy":"login"}"#));
        let dir = tempfile::tempdir().expect("temp dir");
        let typescript = dir.path().join("typescript");
        let binary = assert_cmd::cargo::cargo_bin("tollgate");
        // `script` gives the terminal no size when its own input is not one: 0 × 0 draws
        // nothing.
        let command = format!(
            "stty rows 40 cols 120; exec {} monitor --server {} --interval 200ms",
            binary.display(),
            server.url()
        );
        let script = std::process::Command::new("script")
            .args(["-q", "-f", "-e", "-c", &command])
            .arg(&typescript)
            .env("TERM", "xterm")
            .env_remove("TOLLGATE_TOKEN")
            // Kept open and silent: no key reaches the view.
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("script (util-linux) runs");
        let script = KillOnDrop(script);
        let screen = || {
            String::from_utf8_lossy(&std::fs::read(&typescript).unwrap_or_default()).into_owned()
        };
        let drawn = wait_for(Duration::from_secs(20), || {
            let text = screen();
            text.contains("\x1b[?1049h") && text.contains("login")
        });
        assert!(
            drawn.is_some(),
            "the view never showed the policy:\n{}",
            screen()
        );
        let monitor = child_of(script.0.id()).expect("the monitor runs under script");
        LiveView {
            script,
            monitor,
            typescript,
            _dir: dir,
            _server: server,
        }
    }

    /// What the view has written to its terminal.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.typescript).unwrap_or_default()).into_owned()
    }

    /// Whether the monitor process has ended (gone, or a zombie waiting for its new parent).
    fn monitor_ended(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.monitor))
            .ok()
            .and_then(|stat| {
                let state = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .next()?
                    .to_string();
                Some(state == "Z" || state == "X")
            })
            .unwrap_or(true)
    }
}

#[cfg(unix)]
impl Drop for LiveView {
    fn drop(&mut self) {
        // Never left behind, even by a failed test.
        if !self.monitor_ended() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.monitor.to_string()])
                .status();
        }
    }
}

/// SIGTERM ends the live view as `q` does: the terminal is put back (the alternate screen
/// left) and the status is 128 + 15.
#[cfg(unix)]
#[test]
fn sigterm_ends_the_live_view_and_puts_the_terminal_back() {
    let mut view = LiveView::start();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &view.monitor.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exited = wait_for(Duration::from_secs(10), || {
        view.script.0.try_wait().expect("try_wait").is_some()
    });
    assert!(exited.is_some(), "the view did not end on SIGTERM");
    let status = view.script.0.wait().expect("script's status");
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "script passes the view's status on"
    );
    let text = view.screen();
    let entered = text
        .find("\x1b[?1049h")
        .expect("entered the alternate screen");
    assert!(
        text[entered..].contains("\x1b[?1049l"),
        "the alternate screen was not left: {:?}",
        &text[text.len().saturating_sub(200)..]
    );
}

/// A terminal that goes away (an SSH session dropped: here `script`, which holds it, killed)
/// ends the view; it does not stay behind reading the closed terminal forever.
#[cfg(unix)]
#[test]
fn a_terminal_that_hangs_up_ends_the_live_view() {
    let mut view = LiveView::start();
    view.script.0.kill().expect("kill script");
    let _ = view.script.0.wait();
    let ended = wait_for(Duration::from_secs(10), || view.monitor_ended());
    assert!(ended.is_some(), "the view outlived its terminal");
}

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first process whose parent is `parent`, from `/proc`.
#[cfg(unix)]
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ')'.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
}
