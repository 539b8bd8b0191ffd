//! The plain-text report of `--once`: no escape codes, columns aligned with spaces.

use std::fmt::Write;

use tollgate_server::stats::{RATE_WINDOW_S, StatsReport};

use super::format::{
    by_priority, denied_key, finish, latency_ms, per_s, percent, relative, span_ms, store_health,
};

/// The report for the server at `base`.
pub fn report(r: &StatsReport, base: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tollgate {} at {base}, up {}",
        r.version,
        span_ms(r.uptime_s.saturating_mul(1000))
    );
    let d = &r.decisions;
    let _ = writeln!(
        out,
        "decisions    allowed {}, denied {} ({} denied); since start {} allowed, {} denied",
        per_s(d.allowed_per_s),
        per_s(d.denied_per_s),
        percent(d.denied_percent),
        d.allowed_total,
        d.denied_total
    );
    let l = &r.latency;
    let _ = writeln!(
        out,
        "latency      p50 {}, p99 {}, max {} over {} checks",
        latency_ms(l.p50_ms),
        latency_ms(l.p99_ms),
        latency_ms(l.max_ms),
        l.count
    );
    let s = &r.store;
    let _ = writeln!(
        out,
        "store        {}; {} failures, {} fallback decisions, breaker opened {} times",
        store_health(s),
        s.failures_total,
        s.fallback_decisions_total,
        s.breaker_opened_total
    );

    let _ = writeln!(out, "\npolicies (rates over the last {RATE_WINDOW_S} s)");
    if r.policies.is_empty() {
        let _ = writeln!(out, "  none has decided anything yet");
    } else {
        let mut rows = Vec::new();
        for p in &r.policies {
            rows.push(vec![
                p.name.clone(),
                p.rate.clone().unwrap_or_else(|| "-".into()),
                p.algorithm.clone().unwrap_or_else(|| "-".into()),
                per_s(p.decisions.allowed_per_s),
                per_s(p.decisions.denied_per_s),
                percent(p.decisions.denied_percent),
                p.decisions.allowed_total.to_string(),
                p.decisions.denied_total.to_string(),
            ]);
        }
        let header = [
            "NAME",
            "RATE",
            "ALGORITHM",
            "ALLOWED",
            "DENIED",
            "DENIED%",
            "ALLOWED TOTAL",
            "DENIED TOTAL",
        ];
        let lines = table(&header, &rows);
        let _ = writeln!(out, "  {}", lines[0]);
        for (p, line) in r.policies.iter().zip(&lines[1..]) {
            let _ = writeln!(out, "  {line}");
            if !p.top_denied.is_empty() {
                let keys: Vec<String> = p.top_denied.iter().map(denied_key).collect();
                let _ = writeln!(out, "    top denied: {}", keys.join(", "));
            }
        }
    }

    let _ = writeln!(out, "\nqueues");
    if let Some(error) = &r.queues_error {
        let _ = writeln!(out, "  cannot be read: {error}");
    } else if r.queues.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let rows: Vec<Vec<String>> = r
            .queues
            .iter()
            .map(|q| {
                let s = &q.stats;
                vec![
                    s.name.clone(),
                    s.rate.to_string(),
                    if s.active { "active" } else { "paused" }.into(),
                    s.waiting.to_string(),
                    by_priority(q),
                    s.in_flight.to_string(),
                    s.delayed.to_string(),
                    s.dead.to_string(),
                    span_ms(s.next_token_ms),
                    per_s(q.completed_per_s),
                    s.completed.to_string(),
                    finish(q).0,
                ]
            })
            .collect();
        let header = [
            "NAME",
            "RATE",
            "STATE",
            "WAITING",
            "BY PRIORITY",
            "IN FLIGHT",
            "DELAYED",
            "DEAD",
            "NEXT TOKEN",
            "DONE/S",
            "COMPLETED",
            "FINISH",
        ];
        for line in table(&header, &rows) {
            let _ = writeln!(out, "  {line}");
        }
    }

    let _ = writeln!(out, "\ncontrollers");
    if r.controllers.is_empty() {
        let _ = writeln!(out, "  none reporting");
    } else {
        let rows: Vec<Vec<String>> = r
            .controllers
            .iter()
            .map(|c| {
                let u = &c.usage;
                vec![
                    c.name.clone(),
                    format!("{} ({}/{})", percent(u.usage_percent), u.usage, u.capacity),
                    u.tier.clone(),
                    u.waiting.to_string(),
                    u.granted.to_string(),
                    u.sla_violations.to_string(),
                    format!(
                        "{}{}",
                        relative(r.now_ms, c.received_ms),
                        if c.stale { " (STALE)" } else { "" }
                    ),
                ]
            })
            .collect();
        let header = [
            "NAME",
            "USAGE",
            "TIER",
            "WAITING",
            "GRANTED",
            "SLA MISSES",
            "REPORTED",
        ];
        for line in table(&header, &rows) {
            let _ = writeln!(out, "  {line}");
        }
    }

    let _ = writeln!(out, "\nalerts");
    if r.alerts.is_empty() {
        let _ = writeln!(out, "  none firing");
    }
    for a in &r.alerts {
        let _ = writeln!(
            out,
            "  FIRING {} ({}) since {}: {}",
            a.rule,
            a.kind,
            relative(r.now_ms, a.since_ms),
            a.message
        );
    }
    out.trim_end().to_string()
}

/// Lines of left-aligned columns two spaces apart, the header first; no trailing spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        text.trim_end().to_string()
    };
    let mut lines = vec![line(header.to_vec())];
    lines.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::fixture;

    fn line_with<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
    }

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn the_busy_report_shows_every_part() {
        let text = report(&fixture::busy(), "http://limits:8080");
        assert!(text.starts_with("tollgate 0.1.0 at http://limits:8080, up 1h02m\n"));
        assert!(text.contains(
            "allowed 142.5/s, denied 31.5/s (18.1% denied); since start 123456 allowed, 7890 denied"
        ), "{text}");
        assert!(text.contains("p50 0.050 ms, p99 0.420 ms, max 3.2 ms over 131346 checks"));
        assert!(text.contains(
            "redis: ready, breaker half-open, 2 slots open; 17 failures, 5 fallback decisions, \
             breaker opened 3 times"
        ));
        assert_eq!(
            words(line_with(&text, "login ")),
            [
                "login",
                "5/60s",
                "sliding-window",
                "2.5/s",
                "30.0/s",
                "92.3%",
                "3000",
                "7000"
            ]
        );
        assert_eq!(
            line_with(&text, "top denied: login"),
            "    top denied: login:mallory 4200, login:eve 1300 (±12), login:trudy 250 (±12)"
        );
        assert_eq!(
            words(line_with(&text, "inline")),
            ["inline", "-", "-", "0.0/s", "0.0/s", "0.0%", "456", "0"]
        );
        assert_eq!(
            words(line_with(&text, "emails")),
            [
                "emails", "5/60s", "active", "40", "p9:15", "p0:25", "2", "3", "4", "7s", "0.10/s",
                "11", "done", "in", "9m00s;", "AT", "RISK,", "due", "in", "2m00s"
            ]
        );
        assert!(line_with(&text, "reports").ends_with("done in 50ms; due in 10m00s"));
        assert_eq!(
            words(line_with(&text, "openai")),
            [
                "openai",
                "93.0%",
                "(9300/10000)",
                "heavy",
                "12",
                "55000",
                "7",
                "1s",
                "ago"
            ]
        );
        assert!(text.contains(
            "  FIRING login-abuse (denial_rate) since 1m30s ago: login denies 92.3% of decisions"
        ));
    }

    #[test]
    fn columns_line_up_under_their_headers() {
        let text = report(&fixture::busy(), "http://x");
        let header = text
            .lines()
            .find(|l| l.contains("STATE") && l.contains("DEAD"))
            .expect("the queue header");
        let emails = line_with(&text, "emails");
        let column = header.find("DEAD").expect("DEAD column");
        assert_eq!(&emails[column..column + 1], "4", "{header}\n{emails}");
        assert!(text.lines().all(|l| l == l.trim_end()), "trailing spaces");
    }

    #[test]
    fn an_idle_server_says_so_without_escape_codes() {
        let text = report(&fixture::idle(), "http://127.0.0.1:8080");
        assert!(text.contains("none has decided anything yet"));
        assert!(text.contains("queues\n  none"));
        assert!(text.contains("controllers\n  none reporting"));
        assert!(text.ends_with("alerts\n  none firing"));
        assert!(text.contains("memory: ready, 0 keys tracked"));
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn unreadable_queues_say_why() {
        let mut r = fixture::idle();
        r.queues_error = Some("the queue store is down".into());
        let text = report(&r, "http://x");
        assert!(text.contains("queues\n  cannot be read: the queue store is down"));
    }
}
