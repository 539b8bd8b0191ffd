//! Two hosts whose clocks disagree by two hours agree on every limit: two `tollgate serve`
//! processes share one real redis-server, one of them under libfaketime (`faketime`, which
//! `scripts/test.sh` installs) with its wall clock set two hours back. Its own log shows the
//! skew; the decisions do not, because every decision is timed by Redis's `TIME`.
//!
//! Everything listens on 127.0.0.1; every loop is bounded in time and in count.

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{Load, MS, Sample, Server, check_body, limit, now_ns};
use serde_json::Value;
use tollgate::{Algorithm, Limit};
use tollgate_testkit::redis::RedisServer;

/// The skewed server's clock runs this far behind (libfaketime's `-f -2h`).
const SKEW_S: i64 = 2 * 3600;

/// Starts `tollgate serve` with `config`, under `faketime -f SKEW` when `skew` is given.
fn start(config: &str, skew: Option<&str>) -> Server {
    let Some(skew) = skew else {
        return Server::start(config, &[]);
    };
    // -m: the multi-threaded libfaketime; the monotonic clock is left alone (a host's
    // monotonic clock is its own business), only the wall clock is moved.
    let mut faketime = Command::new("faketime");
    faketime
        .args(["-m", "--exclude-monotonic", "-f", skew])
        .arg(assert_cmd::cargo::cargo_bin("tollgate"));
    Server::start_under(faketime, config, &[])
}

/// The timestamp of the `HTTP API listening` log line: seconds since the epoch, by the
/// process's own clock.
fn listening_time(stderr: &str) -> Option<i64> {
    log_time(stderr.lines().find(|l| l.contains("HTTP API listening"))?)
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

/// Checks the admissions of one key, timed by the test's clock, against `limit` relaxed by
/// the longest round trip `l` of an admission (see `common::relaxed`: Redis decided each
/// admission within `l` after it was sent).
fn check_admissions(key: &str, limit: &Limit, samples: &[&Sample], l: u64) {
    let admitted: Vec<&Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.allowed == Some(true))
        .collect();
    let (checked, relaxed) = common::relaxed(key, limit, &admitted, l);
    if let Err(v) = tollgate_testkit::check(&relaxed, &checked) {
        panic!("{key} ({limit}): {v}");
    }
    // Thread t talks to server t % 2; server 1 is the skewed one.
    let by_server = |i| admitted.iter().filter(|s| s.thread % 2 == i).count();
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
    let servers = [start(&config, None), start(&config, Some("-2h"))];

    // libfaketime really moved the second server's clock: its own log is two hours behind.
    let now = i64::try_from(now_ns() / 1_000_000_000).expect("seconds");
    let logged: Vec<i64> = servers
        .iter()
        .map(|s| listening_time(&s.stderr()).expect("listening line"))
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
        let body = check_body(key, l);
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
    let bodies: Vec<String> = keys.iter().map(|(k, l)| check_body(k, l)).collect();
    // Thread t talks to server t % 2 and sends bodies[(t + n) % 3] as its n-th check.
    let load = Load::start(
        &[servers[0].http, servers[1].http],
        &bodies,
        8,
        |t, n| t + n,
        Instant::now() + Duration::from_secs(4),
    );
    thread::sleep(Duration::from_secs(2));
    let samples = load.stop();
    let unanswered = samples
        .iter()
        .filter(|s| s.status != 200 || s.allowed.is_none())
        .count();
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
