//! How `queue show`, `list` and `dead` print: a report for people, JSON for scripts.

use std::fmt::Write;

use serde_json::{Value, json};
use tollgate_queue::{DeadTask, QueueStats, format_duration};

/// The stats with the projection, for `--json`.
pub fn json(s: &QueueStats) -> Value {
    let mut value = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("projected_finish_ms".into(), json!(s.projected_finish_ms()));
        map.insert("deadline_at_risk".into(), json!(s.deadline_at_risk()));
    }
    value
}

fn ago(now_ms: u64, at_ms: u64) -> String {
    if at_ms >= now_ms {
        format!(
            "in {}",
            format_duration(std::time::Duration::from_millis(at_ms - now_ms))
        )
    } else {
        format!(
            "{} ago",
            format_duration(std::time::Duration::from_millis(now_ms - at_ms))
        )
    }
}

/// The human report of `queue show`.
pub fn report(s: &QueueStats) -> String {
    let mut out = String::new();
    let mode = match s.burst {
        None => "strict, no bursts".to_string(),
        Some(b) => format!("burst {b}"),
    };
    let state = if s.active { "active" } else { "paused" };
    let _ = writeln!(out, "queue {}  ({state})", s.name);
    let _ = writeln!(
        out,
        "  rate        {} ({mode}); next token in {} ms",
        s.rate, s.next_token_ms
    );
    let _ = writeln!(out, "  waiting     {}", s.waiting);
    for d in &s.waiting_by_priority {
        let _ = writeln!(out, "    priority {:>7}: {}", d.priority, d.waiting);
    }
    let _ = writeln!(out, "  in flight   {}", s.in_flight);
    let _ = writeln!(out, "  delayed     {}", s.delayed);
    let _ = writeln!(out, "  completed   {}", s.completed);
    let _ = writeln!(
        out,
        "  failed      {} attempts ({} leases expired)",
        s.failed, s.lost
    );
    let _ = writeln!(out, "  dead        {}", s.dead);
    let _ = writeln!(out, "  pushed      {}  started {}", s.pushed, s.started);
    let _ = writeln!(out, "  throughput  {:.2}/s", s.throughput_per_s);
    let _ = writeln!(
        out,
        "  workers     {} slots in {} process{}",
        s.workers.slots,
        s.workers.processes,
        if s.workers.processes == 1 { "" } else { "es" }
    );
    let _ = writeln!(
        out,
        "  settings    max attempts {}, visibility timeout {}, idle expiry {}",
        s.max_attempts,
        format_duration(std::time::Duration::from_millis(s.visibility_timeout_ms)),
        format_duration(std::time::Duration::from_millis(s.idle_expiry_ms)),
    );
    if let Some(finish) = s.projected_finish_ms().filter(|_| s.backlog() > 0) {
        let _ = write!(
            out,
            "  projected   done {} at this rate",
            ago(s.now_ms, finish)
        );
        match s.deadline_ms {
            Some(d) if finish > d => {
                let _ = write!(out, "; DEADLINE AT RISK (due {})", ago(s.now_ms, d));
            }
            Some(d) => {
                let _ = write!(out, "; deadline {} is met", ago(s.now_ms, d));
            }
            None => {}
        }
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// The table of `queue list`.
pub fn table(queues: &[QueueStats]) -> String {
    if queues.is_empty() {
        return "no queues".to_string();
    }
    let mut out = format!(
        "{:<42} {:>10} {:>7} {:>8} {:>9} {:>8} {:>10} {:>6}\n",
        "NAME", "RATE", "STATE", "WAITING", "IN FLIGHT", "DELAYED", "COMPLETED", "DEAD"
    );
    for q in queues {
        let _ = writeln!(
            out,
            "{:<42} {:>10} {:>7} {:>8} {:>9} {:>8} {:>10} {:>6}",
            q.name,
            q.rate.to_string(),
            if q.active { "active" } else { "paused" },
            q.waiting,
            q.in_flight,
            q.delayed,
            q.completed,
            q.dead
        );
    }
    out.trim_end().to_string()
}

/// The list of `queue dead`.
pub fn dead(tasks: &[DeadTask]) -> String {
    if tasks.is_empty() {
        return "no dead tasks".to_string();
    }
    let mut out = String::new();
    for t in tasks {
        let _ = writeln!(
            out,
            "{}  attempts {}  priority {}  error: {}\n    payload: {}",
            t.id, t.attempts, t.priority, t.last_error, t.payload
        );
    }
    out.trim_end().to_string()
}
