//! Two hosts whose clocks disagree by two hours agree on every limit: two `tollgate serve`
//! processes share one real redis-server, one of them under libfaketime (`faketime`, which
//! `scripts/test.sh` installs) with its wall clock set two hours back. Its own log shows the
//! skew; the decisions do not, because every decision is timed by Redis's `TIME`.
//!
//! Everything listens on 127.0.0.1; every loop is bounded in time and in count.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tollgate::{Algorithm, Limit, Rate, Unit};
use tollgate_testkit::Admission;
use tollgate_testkit::redis::RedisServer;

const MS: u64 = 1_000_000;
/// The skewed server's clock runs this far behind (libfaketime's `-f -2h`).
const SKEW_S: i64 = 2 * 3600;

fn now_ns() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_nanos()).expect("before 2554")
}

/// A `tollgate serve` process, its stderr collected as it is written.
struct Server {
    child: Child,
    http: SocketAddr,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `tollgate serve` with `config`, under `faketime -f SKEW` when `skew` is given.
    fn start(config: &str, skew: Option<&str>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tollgate.yaml");
        std::fs::write(&path, config).expect("write config");
        let binary = assert_cmd::cargo::cargo_bin("tollgate");
        let mut command = match skew {
            // -m: the multi-threaded libfaketime; the monotonic clock is left alone (a host's
            // monotonic clock is its own business), only the wall clock is moved.
            Some(skew) => {
                let mut c = Command::new("faketime");
                c.args(["-m", "--exclude-monotonic", "-f", skew])
                    .arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        let mut child = command
            .args(["serve", "--http", "127.0.0.1:0", "--config"])
            .arg(&path)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("TOLLGATE_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {command:?} ({e}); scripts/test.sh installs faketime")
            });
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr piped");
        let sink = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().expect("stderr lock");
                text.push_str(&line);
                text.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let http = loop {
            let text = stderr.lock().expect("stderr lock").clone();
            if let Some(addr) = listening(&text).map(|(_, addr)| addr) {
                break addr;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("tollgate serve exited ({status}) before listening:\n{text}");
            }
            assert!(Instant::now() < deadline, "not listening:\n{text}");
            thread::sleep(Duration::from_millis(10));
        };
        Server {
            child,
            http,
            stderr,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// `POST /v1/check`, which must answer 200.
    fn check(&self, body: &str) -> Value {
        let (status, text) = Client::new(self.http)
            .request("/v1/check", body)
            .expect("check answered");
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("json")
    }
}

/// The `HTTP API listening addr=…` log line: its timestamp (seconds since the epoch, by the
/// process's own clock) and the address.
fn listening(stderr: &str) -> Option<(i64, SocketAddr)> {
    let line = stderr.lines().find(|l| l.contains("HTTP API listening"))?;
    let addr = line.rsplit("addr=").next()?.trim().parse().ok()?;
    Some((log_time(line)?, addr))
}

/// `2026-11-22T14:09:01.123456Z …` (tracing's default format) to seconds since the epoch.
fn log_time(line: &str) -> Option<i64> {
    let n = |from: usize, len: usize| line.get(from..from + len)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 2)?, n(8, 2)?);
    let (hh, mm, ss) = (n(11, 2)?, n(14, 2)?, n(17, 2)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// HTTP/1.1 on one keep-alive connection, reconnecting after an error.
struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    fn request(&mut self, path: &str, body: &str) -> io::Result<(u16, String)> {
        let answer = self.exchange(path, body);
        if answer.is_err() {
            self.conn = None;
        }
        answer
    }

    fn exchange(&mut self, path: &str, body: &str) -> io::Result<(u16, String)> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                self.conn.insert(BufReader::new(stream))
            }
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        conn.get_mut()
            .write_all(format!("{head}{body}").as_bytes())?;
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(io::Error::other)?;
            }
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn body(key: &str, limit: &Limit) -> String {
    let burst = match limit.algorithm() {
        Algorithm::Gcra => format!(r#","burst":{}"#, limit.burst()),
        _ => String::new(),
    };
    format!(
        r#"{{"key":"{key}","rate":"{}","algorithm":"{}"{burst}}}"#,
        limit.rate(),
        limit.algorithm()
    )
}

fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
    Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
}

/// One check of the load: sent and answered by the test's clock (ns; `sent` rounded down and
/// `received` up to Redis's µs, so that Redis's decision lies in `[sent, received]`).
#[derive(Debug, Clone, Copy)]
struct Sample {
    key: usize,
    server: usize,
    sent: u64,
    received: u64,
    allowed: Option<bool>,
}

/// `threads` threads check back to back for `run`: thread `t` talks to server `t % 2` and
/// sends `bodies[(t + n) % len]` as its `n`-th check.
fn load(servers: [SocketAddr; 2], bodies: &[String], threads: usize, run: Duration) -> Vec<Sample> {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (bodies, stop) = (bodies.to_vec(), stop.clone());
            let addr = servers[t % 2];
            thread::spawn(move || {
                let mut client = Client::new(addr);
                let mut samples = Vec::new();
                for n in 0..200_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = (t + n) % bodies.len();
                    let sent = now_ns() / 1000 * 1000;
                    let answer = client.request("/v1/check", &bodies[key]);
                    let received = now_ns().div_ceil(1000) * 1000;
                    let allowed = answer.ok().and_then(|(status, text)| {
                        let v: Value = serde_json::from_str(&text).ok()?;
                        (status == 200).then(|| v["allowed"].as_bool())?
                    });
                    samples.push(Sample {
                        key,
                        server: t % 2,
                        sent,
                        received,
                        allowed,
                    });
                }
                samples
            })
        })
        .collect();
    thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("load thread"))
        .collect()
}

/// Checks the admissions of one key, timed by the test's clock, against `limit` relaxed by
/// the longest round trip `l` of an admission (the bound argued in `serve_redis.rs`: Redis
/// decided each admission within `l` after it was sent).
fn check_admissions(key: &str, limit: &Limit, samples: &[&Sample], l: u64) {
    let admitted: Vec<&Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.allowed == Some(true))
        .collect();
    let at_sent = |a: &[&Sample]| -> Vec<Admission> {
        a.iter().map(|s| Admission { t: s.sent, cost: 1 }).collect()
    };
    let (count, period) = (limit.rate().count(), limit.rate().period_ns());
    let (checked, relaxed) = match limit.algorithm() {
        Algorithm::Gcra => {
            let burst = limit.burst() + (l * count).div_ceil(period) + 1;
            let relaxed = Limit::new(limit.rate(), Algorithm::Gcra, Some(burst)).expect("limit");
            (at_sent(&admitted), relaxed)
        }
        Algorithm::SlidingWindow => {
            assert!(l < period / 2, "L = {l} ns is too long to check {key}");
            let rate = Rate::new(count, (period - l) / MS, Unit::Millisecond).expect("rate");
            let relaxed = Limit::new(rate, Algorithm::SlidingWindow, None).expect("limit");
            (at_sent(&admitted), relaxed)
        }
        _ => {
            let inside: Vec<&Sample> = admitted
                .iter()
                .copied()
                .filter(|s| s.sent / period == s.received / period)
                .collect();
            (at_sent(&inside), *limit)
        }
    };
    if let Err(v) = tollgate_testkit::check(&relaxed, &checked) {
        panic!("{key} ({limit}): {v}");
    }
    let by_server = |i| admitted.iter().filter(|s| s.server == i).count();
    eprintln!(
        "{key} ({limit}): {} admitted ({} by the skewed server), {} denied; checked against \
         {relaxed}",
        admitted.len(),
        by_server(1),
        samples.len() - admitted.len()
    );
    assert!(
        by_server(0) > 0 && by_server(1) > 0,
        "{key}: both servers admit"
    );
    assert!(admitted.len() < samples.len(), "{key} was never pressed");
}

#[test]
fn two_servers_two_hours_apart_agree_on_every_limit() {
    let redis = RedisServer::start().expect("redis-server");
    let config = format!("store: {}\nstore_timeout_ms: 1000\n", redis.url());
    let servers = [
        Server::start(&config, None),
        Server::start(&config, Some("-2h")),
    ];

    // libfaketime really moved the second server's clock: its own log is two hours behind.
    let now = i64::try_from(now_ns() / 1_000_000_000).expect("seconds");
    let logged: Vec<i64> = servers
        .iter()
        .map(|s| listening(&s.stderr()).expect("listening line").0)
        .collect();
    assert!((logged[0] - now).abs() < 60, "{} vs {now}", logged[0]);
    assert!(
        (logged[1] - (now - SKEW_S)).abs() < 60,
        "the skewed server logged {} (now {now}): libfaketime did not apply:\n{}",
        logged[1],
        servers[1].stderr()
    );

    // Alternating checks: each server counts the other's admissions, and both report the
    // same waits. Periods of hours: a local clock used by mistake would be 2 h off, and a
    // 7 h window is not aligned alike on clocks 2 h apart.
    let cases = [
        ("agree:gcra", limit("6/h", Algorithm::Gcra, None)),
        (
            "agree:sliding",
            limit("6/h", Algorithm::SlidingWindow, None),
        ),
        ("agree:fixed", limit("6/7h", Algorithm::FixedWindow, None)),
    ];
    for (key, l) in &cases {
        let body = body(key, l);
        for n in 0..6u64 {
            let d = servers[(n % 2) as usize].check(&body);
            assert_eq!(d["allowed"], true, "{key} #{n}: {d}");
            assert_eq!(d["remaining"], 5 - n, "{key} #{n}: {d}");
        }
        let asked = now_ns();
        let [a, b] = [servers[0].check(&body), servers[1].check(&body)];
        for d in [&a, &b] {
            assert_eq!(
                (&d["allowed"], &d["remaining"]),
                (&Value::Bool(false), &0.into())
            );
        }
        for field in ["retry_after_ms", "reset_after_ms"] {
            let (x, y) = (
                a[field].as_u64().expect("ms"),
                b[field].as_u64().expect("ms"),
            );
            assert!(x.abs_diff(y) < 1000, "{key} {field}: {x} vs {y}");
        }
        if l.algorithm() == Algorithm::FixedWindow {
            // The window ends at the next multiple of 7 h on Redis's (the real) clock.
            let period = l.rate().period_ns();
            let end_ms = (asked / period + 1) * period / MS;
            let expected = end_ms - asked / MS;
            let told = b["reset_after_ms"].as_u64().expect("ms");
            assert!(told.abs_diff(expected) < 2000, "{told} vs {expected}");
        }
    }

    // Concurrent load from both, checked by the independent checker on the test's clock.
    let keys = [
        ("load:gcra", limit("200/1s", Algorithm::Gcra, Some(20))),
        (
            "load:sliding",
            limit("100/500ms", Algorithm::SlidingWindow, None),
        ),
        (
            "load:fixed",
            limit("100/500ms", Algorithm::FixedWindow, None),
        ),
    ];
    let bodies: Vec<String> = keys.iter().map(|(k, l)| body(k, l)).collect();
    let samples = load(
        [servers[0].http, servers[1].http],
        &bodies,
        8,
        Duration::from_secs(2),
    );
    let unanswered = samples.iter().filter(|s| s.allowed.is_none()).count();
    assert_eq!(unanswered, 0, "checks without an answer");
    let l = samples
        .iter()
        .filter(|s| s.allowed == Some(true))
        .map(|s| s.received - s.sent)
        .max()
        .expect("admissions");
    eprintln!(
        "{} checks; L = {:.3} ms",
        samples.len(),
        l as f64 / MS as f64
    );
    for (k, (key, limit)) in keys.iter().enumerate() {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.key == k).collect();
        check_admissions(key, limit, &mine, l);
    }
}
