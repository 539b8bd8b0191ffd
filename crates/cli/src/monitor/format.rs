//! Numbers and times as both views print them, so the TUI and `--once` agree.

use tollgate_server::stats::{DeniedKey, QueueReport};

/// A rate per second: `142.5/s`; small rates keep two decimals (`0.08/s`).
pub fn per_s(rate: f64) -> String {
    if rate != 0.0 && rate.abs() < 1.0 {
        format!("{rate:.2}/s")
    } else {
        format!("{rate:.1}/s")
    }
}

/// A percentage: `18.1%`.
pub fn percent(value: f64) -> String {
    format!("{value:.1}%")
}

/// Milliseconds of latency: `0.05 ms`.
pub fn latency_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// A span for people, two units at most: `450ms`, `7s`, `2m05s`, `1h02m`, `3d04h`.
pub fn span_ms(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{s}s"),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `at_ms` against `now_ms`: `in 9m00s` or `2m05s ago`.
pub fn relative(now_ms: u64, at_ms: u64) -> String {
    if at_ms >= now_ms {
        format!("in {}", span_ms(at_ms - now_ms))
    } else {
        format!("{} ago", span_ms(now_ms - at_ms))
    }
}

/// Waiting tasks by priority, highest first: `p9:15 p0:25` (`-` when none wait).
pub fn by_priority(queue: &QueueReport) -> String {
    let parts: Vec<String> = queue
        .stats
        .waiting_by_priority
        .iter()
        .filter(|d| d.waiting > 0)
        .map(|d| format!("p{}:{}", d.priority, d.waiting))
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(" ")
    }
}

/// The projected finish against the deadline, and whether it is at risk.
pub fn finish(queue: &QueueReport) -> (String, bool) {
    let now = queue.stats.now_ms;
    let at_risk = queue.deadline_at_risk == Some(true);
    let done = match queue.projected_finish_ms {
        _ if queue.stats.backlog() == 0 => "done".to_string(),
        Some(at) => format!("done {}", relative(now, at)),
        None => "unknown".to_string(),
    };
    let text = match queue.stats.deadline_ms {
        Some(deadline) if at_risk => {
            format!("{done}; AT RISK, due {}", relative(now, deadline))
        }
        Some(deadline) => format!("{done}; due {}", relative(now, deadline)),
        None => done,
    };
    (text, at_risk)
}

/// The projected finish and the deadline as two short cells for the live view:
/// (`in 9m00s`, `in 2m00s AT RISK`), and whether the deadline is at risk.
pub fn finish_cells(queue: &QueueReport) -> (String, String, bool) {
    let now = queue.stats.now_ms;
    let at_risk = queue.deadline_at_risk == Some(true);
    let done = match queue.projected_finish_ms {
        _ if queue.stats.backlog() == 0 => "done".to_string(),
        Some(at) => relative(now, at),
        None => "unknown".to_string(),
    };
    let deadline = match queue.stats.deadline_ms {
        Some(d) if at_risk => format!("{} AT RISK", relative(now, d)),
        Some(d) => relative(now, d),
        None => "-".to_string(),
    };
    (done, deadline, at_risk)
}

/// The width of a column holding `cells` under `header`, at most `cap`.
pub fn column_width<'a>(header: &str, cells: impl Iterator<Item = &'a str>, cap: usize) -> u16 {
    let widest = cells
        .map(|c| c.chars().count())
        .chain([header.chars().count()])
        .max()
        .unwrap_or(0);
    u16::try_from(widest.min(cap)).unwrap_or(u16::MAX)
}

/// A heavy hitter: `login:eve 1300 (±12)`.
pub fn denied_key(key: &DeniedKey) -> String {
    if key.error > 0 {
        format!("{} {} (±{})", key.key, key.denied, key.error)
    } else {
        format!("{} {}", key.key, key.denied)
    }
}

/// The store's one-line health: `redis: ready, breaker half-open, 2 slots open`.
pub fn store_health(store: &tollgate_server::stats::StoreReport) -> String {
    let mut text = format!(
        "{}: {}",
        store.kind,
        if store.ready { "ready" } else { "DOWN" }
    );
    if let Some(breaker) = &store.breaker {
        text.push_str(&format!(", breaker {breaker}"));
    }
    if store.open_slots > 0 {
        text.push_str(&format!(", {} slots open", store.open_slots));
    }
    if let Some(keys) = store.tracked_keys {
        text.push_str(&format!(", {keys} keys tracked"));
    }
    if let Some(error) = &store.error {
        text.push_str(&format!(" ({error})"));
    }
    text
}

/// Whether the store needs attention: not ready, or its breaker not closed.
pub fn store_troubled(store: &tollgate_server::stats::StoreReport) -> bool {
    !store.ready || store.breaker.as_deref().is_some_and(|b| b != "closed") || store.open_slots > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::fixture;

    #[test]
    fn spans_use_two_units_at_most() {
        assert_eq!(span_ms(450), "450ms");
        assert_eq!(span_ms(7_400), "7s");
        assert_eq!(span_ms(125_000), "2m05s");
        assert_eq!(span_ms(3_725_000), "1h02m");
        assert_eq!(span_ms(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
        assert_eq!(relative(10_000, 19_000), "in 9s");
        assert_eq!(relative(10_000, 5_000), "5s ago");
    }

    #[test]
    fn rates_keep_small_values_readable() {
        assert_eq!(per_s(142.5), "142.5/s");
        assert_eq!(per_s(0.08), "0.08/s");
        assert_eq!(per_s(0.0), "0.0/s");
        assert_eq!(percent(18.0952), "18.1%");
    }

    #[test]
    fn queues_show_priorities_and_deadline_risk() {
        let report = fixture::busy();
        let emails = &report.queues[0];
        assert_eq!(by_priority(emails), "p9:15 p0:25");
        let (text, at_risk) = finish(emails);
        assert!(at_risk);
        assert_eq!(text, "done in 9m00s; AT RISK, due in 2m00s");
        let (text, at_risk) = finish(&report.queues[1]);
        assert!(!at_risk);
        assert_eq!(text, "done in 50ms; due in 10m00s");
        assert_eq!(
            finish_cells(emails),
            ("in 9m00s".into(), "in 2m00s AT RISK".into(), true)
        );
        let mut empty = report.queues[1].clone();
        empty.stats.waiting = 0;
        empty.stats.deadline_ms = None;
        assert_eq!(finish_cells(&empty), ("done".into(), "-".into(), false));
    }

    #[test]
    fn store_health_names_the_breaker() {
        let report = fixture::busy();
        assert_eq!(
            store_health(&report.store),
            "redis: ready, breaker half-open, 2 slots open"
        );
        assert!(store_troubled(&report.store));
        let idle = fixture::idle();
        assert_eq!(store_health(&idle.store), "memory: ready, 0 keys tracked");
        assert!(!store_troubled(&idle.store));
    }
}
