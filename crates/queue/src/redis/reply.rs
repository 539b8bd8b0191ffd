//! Reading the scripts' replies: arrays of integers and strings, in the shapes each script's
//! header documents. Anything else is a `store_unavailable` error naming the reply.

use std::collections::HashMap;

use redis::Value;

use crate::error::QueueError;
use crate::fleet::Fleet;
use crate::store::QueueResult;
use crate::task::{DeadTask, Lease, PriorityDepth, QueueStats, Reservation};

/// A script's reply.
pub(super) struct Reply(Value);

fn bad(value: &Value) -> QueueError {
    QueueError::bad_reply(format!("{value:?}"))
}

fn as_int(value: &Value) -> QueueResult<i64> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(value)),
        other => Err(bad(other)),
    }
}

fn as_string(value: &Value) -> QueueResult<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).map_err(|_| bad(value)),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(bad(other)),
    }
}

fn is_array(value: &Value) -> bool {
    matches!(value, Value::Array(_))
}

fn as_u64(value: &Value) -> QueueResult<u64> {
    u64::try_from(as_int(value)?).map_err(|_| bad(value))
}

fn as_fleet(processes: &Value, slots: &Value) -> QueueResult<Fleet> {
    let as_u32 = |v: &Value| u32::try_from(as_int(v)?).map_err(|_| bad(v));
    Ok(Fleet {
        processes: as_u32(processes)?,
        slots: as_u32(slots)?,
    })
}

impl Reply {
    pub(super) fn new(value: Value) -> Reply {
        Reply(value)
    }

    fn items(&self) -> QueueResult<&[Value]> {
        match &self.0 {
            Value::Array(items) => Ok(items),
            other => Err(bad(other)),
        }
    }

    pub(super) fn int(&self) -> QueueResult<i64> {
        as_int(&self.0)
    }

    pub(super) fn int_at(&self, i: usize) -> QueueResult<i64> {
        self.items()?
            .get(i)
            .map_or_else(|| Err(bad(&self.0)), as_int)
    }

    pub(super) fn string_at(&self, i: usize) -> QueueResult<String> {
        self.items()?
            .get(i)
            .map_or_else(|| Err(bad(&self.0)), as_string)
    }

    pub(super) fn strings(&self) -> QueueResult<Vec<String>> {
        match &self.0 {
            Value::Array(items) | Value::Set(items) => items.iter().map(as_string).collect(),
            other => Err(bad(other)),
        }
    }

    pub(super) fn reservation(&self, queue: &str) -> QueueResult<Reservation> {
        let u = |i| {
            self.int_at(i)
                .and_then(|n| u64::try_from(n).map_err(|_| bad(&self.0)))
        };
        match self.int_at(0)? {
            0 => Err(QueueError::UnknownQueue {
                name: queue.to_string(),
            }),
            1 => Ok(Reservation::Paused),
            2 => Ok(Reservation::Empty {
                next_due_ms: u64::try_from(self.int_at(1)?).ok(),
            }),
            3 => Ok(Reservation::RateLimited { wait_ms: u(1)? }),
            4 => {
                let started_us = u(5)?;
                Ok(Reservation::Task(Lease {
                    queue: queue.to_string(),
                    task: self.string_at(1)?,
                    payload: self.string_at(2)?,
                    priority: u32::try_from(u(3)?).map_err(|_| bad(&self.0))?,
                    attempt: u32::try_from(u(4)?).map_err(|_| bad(&self.0))?,
                    started_ms: started_us / 1000,
                    started_us,
                    expires_ms: u(6)?,
                }))
            }
            _ => Err(bad(&self.0)),
        }
    }

    /// ack_reserve.lua's reply for `n` leases: one reply a lease, or `None` when the queue
    /// does not exist.
    pub(super) fn per_lease(self, n: usize) -> QueueResult<Option<Vec<Reply>>> {
        match self.0 {
            Value::Array(items) if items.len() == n && items.iter().all(is_array) => {
                Ok(Some(items.into_iter().map(Reply).collect()))
            }
            Value::Array(ref items) if matches!(items.as_slice(), [Value::Int(0)]) => Ok(None),
            other => Err(bad(&other)),
        }
    }

    /// `None` when the queue does not exist.
    pub(super) fn stats(&self) -> Option<QueueResult<QueueStats>> {
        let items = match self.items() {
            Ok([]) => return None,
            Ok(items) => items,
            Err(e) => return Some(Err(e)),
        };
        Some(self.parse_stats(items))
    }

    fn parse_stats(&self, items: &[Value]) -> QueueResult<QueueStats> {
        let [
            Value::Array(meta),
            Value::Array(counts),
            Value::Array(depths),
        ] = items
        else {
            return Err(bad(&self.0));
        };
        let mut m = HashMap::new();
        for pair in meta.chunks_exact(2) {
            m.insert(as_string(&pair[0])?, as_string(&pair[1])?);
        }
        let text = |f: &str| m.get(f).cloned().ok_or_else(|| bad(&self.0));
        let num = |f: &str| -> QueueResult<u64> { text(f)?.parse().map_err(|_| bad(&self.0)) };
        let [
            waiting,
            delayed,
            in_flight,
            dead,
            next_us,
            now_ms,
            processes,
            slots,
        ] = counts.as_slice()
        else {
            return Err(bad(&self.0));
        };
        let mut by_priority = Vec::new();
        for pair in depths.chunks_exact(2) {
            by_priority.push(PriorityDepth {
                priority: u32::try_from(as_u64(&pair[0])?).map_err(|_| bad(&self.0))?,
                waiting: as_u64(&pair[1])?,
            });
        }
        let rate = text("rate")?
            .parse()
            .map_err(|e| QueueError::bad_reply(format!("stored rate: {e}")))?;
        let deadline = text("deadline_ms")?;
        let (completed, first, last) = (
            num("completed")?,
            num("first_start_ms")?,
            num("last_done_ms")?,
        );
        let span = last.saturating_sub(first);
        Ok(QueueStats {
            name: text("name")?,
            rate,
            burst: (text("strict")? != "1").then(|| num("burst")).transpose()?,
            active: text("active")? == "1",
            max_attempts: u32::try_from(num("max_attempts")?).map_err(|_| bad(&self.0))?,
            visibility_timeout_ms: num("vis_ms")?,
            idle_expiry_ms: num("idle_ms")?,
            backoff_base_ms: num("backoff_base_ms")?,
            backoff_max_ms: num("backoff_max_ms")?,
            created_ms: num("created_ms")?,
            deadline_ms: (!deadline.is_empty())
                .then(|| deadline.parse().map_err(|_| bad(&self.0)))
                .transpose()?,
            waiting: as_u64(waiting)?,
            waiting_by_priority: by_priority,
            in_flight: as_u64(in_flight)?,
            delayed: as_u64(delayed)?,
            dead: as_u64(dead)?,
            pushed: num("pushed")?,
            started: num("started")?,
            completed,
            failed: num("failed")?,
            lost: num("lost")?,
            next_token_ms: as_u64(next_us)?.div_ceil(1000),
            throughput_per_s: if span == 0 || completed == 0 {
                0.0
            } else {
                completed as f64 * 1000.0 / span as f64
            },
            now_ms: as_u64(now_ms)?,
            workers: as_fleet(processes, slots)?,
        })
    }

    /// workers.lua's reply; `None` when the queue does not exist.
    pub(super) fn fleet(&self) -> Option<QueueResult<Fleet>> {
        let items = match self.items() {
            Ok(items) => items,
            Err(e) => return Some(Err(e)),
        };
        match items {
            [Value::Int(0)] => None,
            [Value::Int(1), processes, slots] => Some(as_fleet(processes, slots)),
            _ => Some(Err(bad(&self.0))),
        }
    }

    /// `None` when the queue does not exist.
    pub(super) fn dead(&self) -> Option<QueueResult<Vec<DeadTask>>> {
        if matches!(self.0, Value::Int(-1)) {
            return None;
        }
        Some(self.items().and_then(|items| {
            items
                .chunks_exact(5)
                .map(|row| {
                    let info = as_string(&row[2])?;
                    let (p, a) = info.split_once(':').ok_or_else(|| bad(&row[2]))?;
                    Ok(DeadTask {
                        id: as_string(&row[0])?,
                        payload: as_string(&row[1])?,
                        priority: p.parse().map_err(|_| bad(&row[2]))?,
                        attempts: a.parse().map_err(|_| bad(&row[2]))?,
                        last_error: as_string(&row[3])?,
                        died_ms: as_u64(&row[4])?,
                    })
                })
                .collect()
        }))
    }
}
