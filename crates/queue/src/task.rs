//! Tasks, leases, and what the stores answer about them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::QueueError;
use crate::fleet::Fleet;
use crate::spec::{QueueSpec, millis, rate_text as rate_serde};

/// The largest payload a task may carry, in bytes of JSON text (1 MiB): a queue is not a
/// blob store, and Redis would replicate and persist every byte.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// The highest priority (about a million levels; higher runs first).
pub const MAX_PRIORITY: u32 = 1_000_000;

/// A task to push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    /// The payload: JSON text, handed to the worker as it was given.
    pub payload: String,
    /// Higher runs first; FIFO within one priority. Default 0.
    pub priority: u32,
    /// Waits this long (ms) before it may run. Default 0.
    pub delay_ms: u64,
}

impl NewTask {
    /// A task with payload `json` (checked: JSON, at most [`MAX_PAYLOAD_BYTES`]).
    pub fn json(json: impl Into<String>) -> Result<NewTask, QueueError> {
        let payload = json.into();
        validate_payload(&payload)?;
        Ok(NewTask {
            payload,
            priority: 0,
            delay_ms: 0,
        })
    }

    /// Sets the priority (at most [`MAX_PRIORITY`]).
    pub fn priority(mut self, priority: u32) -> NewTask {
        self.priority = priority;
        self
    }

    /// Delays the task.
    pub fn delay(mut self, delay: Duration) -> NewTask {
        self.delay_ms = millis(delay);
        self
    }

    /// Checks the payload and the priority.
    pub fn validate(&self) -> Result<(), QueueError> {
        validate_payload(&self.payload)?;
        if self.priority > MAX_PRIORITY {
            return Err(QueueError::InvalidSpec {
                field: "priority",
                reason: format!("{} is over the highest, {MAX_PRIORITY}", self.priority),
            });
        }
        Ok(())
    }
}

/// Checks that `payload` is one JSON value of at most [`MAX_PAYLOAD_BYTES`].
pub fn validate_payload(payload: &str) -> Result<(), QueueError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(QueueError::InvalidPayload {
            reason: format!(
                "{} bytes is over the limit of {MAX_PAYLOAD_BYTES} bytes",
                payload.len()
            ),
        });
    }
    serde_json::from_str::<&serde_json::value::RawValue>(payload)
        .map(|_| ())
        .map_err(|e| QueueError::InvalidPayload {
            reason: format!("not JSON: {e}"),
        })
}

/// A task a worker holds: run it, then [`ack`](crate::QueueStore::ack) or
/// [`fail`](crate::QueueStore::fail) with this lease. The pair (task, attempt) names the lease:
/// once it expires the task may run again as a later attempt, and the old lease is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The queue.
    pub queue: String,
    /// The task's id (FIFO order within a priority).
    pub task: String,
    /// The attempt this lease is for, from 1.
    pub attempt: u32,
    /// The payload as pushed.
    pub payload: String,
    /// The task's priority.
    pub priority: u32,
    /// When the store granted the start (its clock), ms since the Unix epoch.
    pub started_ms: u64,
    /// The same, µs (the precision the store decided at).
    pub started_us: u64,
    /// When the lease expires unless renewed, ms since the Unix epoch (the store's clock).
    pub expires_ms: u64,
}

/// What [`reserve`](crate::QueueStore::reserve) found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reservation {
    /// A task, leased to the caller; its start took one token.
    Task(Lease),
    /// Tasks wait but no token exists yet: try again after `wait_ms`.
    RateLimited {
        /// How long until the next token.
        wait_ms: u64,
    },
    /// Nothing is ready. `next_due_ms` is how long until the earliest delayed task is due.
    Empty {
        /// Until the earliest delayed task (none: `None`).
        next_due_ms: Option<u64>,
    },
    /// The queue is deactivated: it keeps its tasks and starts none.
    Paused,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FailOutcome {
    /// It runs again after `delay_ms`.
    Retry {
        /// The backoff chosen (or the worker's `retry_after`).
        delay_ms: u64,
    },
    /// It used its last attempt and is in the dead-letter queue.
    Dead,
}

/// A dead-lettered task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadTask {
    /// The task's id.
    pub id: String,
    /// The payload as pushed.
    pub payload: String,
    /// Its priority.
    pub priority: u32,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: String,
    /// When it died, ms since the Unix epoch.
    pub died_ms: u64,
}

/// A change to a queue's settings; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueUpdate {
    /// A new rate (live: the next start uses it).
    #[serde(default, with = "opt_rate")]
    pub rate: Option<tollgate_core::Rate>,
    /// A new burst; `Some(None)` (JSON `null`) back to strict; absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    pub burst: Option<Option<u64>>,
    /// Pause (false) or resume (true).
    #[serde(default)]
    pub active: Option<bool>,
    /// A deadline (ms since the epoch); `Some(None)` (JSON `null`) clears it; absent:
    /// unchanged.
    #[serde(default, deserialize_with = "present")]
    pub deadline_ms: Option<Option<u64>>,
}

/// A member that is present is `Some`, even when it is `null` (absent members take the
/// `default`, `None`): serde alone reads `null` as `None`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

mod opt_rate {
    use serde::{Deserialize, Deserializer, Serializer};
    use tollgate_core::Rate;

    pub fn serialize<S: Serializer>(rate: &Option<Rate>, s: S) -> Result<S::Ok, S::Error> {
        match rate {
            Some(r) => s.collect_str(r),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Counts of tasks waiting at one priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityDepth {
    /// The priority.
    pub priority: u32,
    /// Tasks waiting at it.
    pub waiting: u64,
}

/// A queue's settings and its state now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Its rate.
    #[serde(with = "rate_serde")]
    pub rate: tollgate_core::Rate,
    /// Its burst (`None`: strict).
    pub burst: Option<u64>,
    /// Whether it starts tasks.
    pub active: bool,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Lease length, ms.
    pub visibility_timeout_ms: u64,
    /// Idle expiry, ms (0: never).
    pub idle_expiry_ms: u64,
    /// The first retry's delay, ms.
    pub backoff_base_ms: u64,
    /// The longest retry delay, ms.
    pub backoff_max_ms: u64,
    /// Created, ms since the epoch.
    pub created_ms: u64,
    /// The deadline, if any, ms since the epoch.
    pub deadline_ms: Option<u64>,
    /// Tasks ready to run.
    pub waiting: u64,
    /// Ready tasks by priority, highest first (at most 64 levels listed).
    pub waiting_by_priority: Vec<PriorityDepth>,
    /// Tasks held by workers.
    pub in_flight: u64,
    /// Tasks waiting for their delay or backoff.
    pub delayed: u64,
    /// Tasks in the dead-letter queue.
    pub dead: u64,
    /// Tasks pushed, ever.
    pub pushed: u64,
    /// Attempts started, ever.
    pub started: u64,
    /// Tasks completed, ever.
    pub completed: u64,
    /// Attempts that failed (each retry and each death), ever.
    pub failed: u64,
    /// Leases that expired (a worker died or was too slow), ever.
    pub lost: u64,
    /// How long until the next start may happen, ms (0: now).
    pub next_token_ms: u64,
    /// Completed tasks per second from the first start to the last completion.
    pub throughput_per_s: f64,
    /// The store's time when these were read, ms since the epoch.
    pub now_ms: u64,
    /// The worker processes serving it that reported within their time to live.
    #[serde(default)]
    pub workers: Fleet,
}

impl QueueStats {
    /// Tasks not yet finished: waiting, delayed and in flight.
    pub fn backlog(&self) -> u64 {
        self.waiting + self.delayed + self.in_flight
    }

    /// When the backlog will be done if workers keep up with the rate, ms since the epoch:
    /// the next token, then one start per emission interval after the burst (service time is
    /// not known here, so it is not added). `None` if the stored rate is not a valid limit.
    pub fn projected_finish_ms(&self) -> Option<u64> {
        let limit = self.spec().limit().ok()?;
        let extra = self
            .backlog()
            .saturating_sub(1)
            .saturating_sub(limit.burst().saturating_sub(1))
            .saturating_mul(limit.interval_ns())
            / 1_000_000;
        Some(self.now_ms + self.next_token_ms + extra)
    }

    /// Whether [`projected_finish_ms`](Self::projected_finish_ms) is after the deadline
    /// (`None` without a deadline).
    pub fn deadline_at_risk(&self) -> Option<bool> {
        let finish = self.projected_finish_ms()?;
        self.deadline_ms.map(|deadline| finish > deadline)
    }

    /// The settings as a spec (for the planner and for `show`).
    pub fn spec(&self) -> QueueSpec {
        QueueSpec {
            name: Some(self.name.clone()),
            rate: self.rate,
            burst: self.burst,
            max_attempts: self.max_attempts,
            visibility_timeout_ms: self.visibility_timeout_ms,
            idle_expiry_ms: self.idle_expiry_ms,
            backoff_base_ms: self.backoff_base_ms,
            backoff_max_ms: self.backoff_max_ms,
            deadline_ms: self.deadline_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_tells_null_from_absent() {
        let u: QueueUpdate = serde_json::from_str(r#"{"burst":null}"#).expect("json");
        assert_eq!((u.burst, u.deadline_ms), (Some(None), None));
        let u: QueueUpdate =
            serde_json::from_str(r#"{"burst":4,"deadline_ms":null}"#).expect("json");
        assert_eq!((u.burst, u.deadline_ms), (Some(Some(4)), Some(None)));
        let back: QueueUpdate =
            serde_json::from_str(&serde_json::to_string(&u).expect("ser")).expect("de");
        assert_eq!(back, u);
    }
}
