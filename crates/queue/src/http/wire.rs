//! The wire side of [`HttpQueues`](super::HttpQueues): the shapes the server sends that the
//! queue types cannot read as they are, and the server's error JSON mapped back to
//! [`QueueError`].

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tollgate_core::Error as CoreError;

use crate::error::QueueError;
use crate::task::{DeadTask, Lease, QueueUpdate, Reservation};

/// What a request is about, to rebuild an error the server names only by code.
#[derive(Default, Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub what: &'a str,
    pub queue: Option<&'a str>,
    pub lease: Option<&'a Lease>,
}

/// The `QueueError` for an error answer.
pub(super) fn refusal(base: &Url, status: StatusCode, bytes: &[u8], ctx: Ctx<'_>) -> QueueError {
    #[derive(Deserialize)]
    struct Body {
        error: Map<String, Value>,
    }
    let Ok(Body { error }) = serde_json::from_slice::<Body>(bytes) else {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        return store_error(
            format!(
                "the queue server at {} answered {status} to {}: {text}",
                base, ctx.what
            ),
            status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
        );
    };
    let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
    let number = |key: &str| error.get(key).and_then(Value::as_u64);
    let code = text("code").unwrap_or_default();
    let message = text("message").unwrap_or_default();
    let reason = text("reason").unwrap_or_else(|| message.clone());
    let queue = text("queue")
        .or_else(|| ctx.queue.map(str::to_string))
        .unwrap_or_default();
    match code.as_str() {
        "unknown_queue" => QueueError::UnknownQueue { name: queue },
        "queue_exists" => QueueError::QueueExists { name: queue },
        "invalid_queue_name" => QueueError::InvalidName {
            name: queue,
            reason: static_name_reason(&reason),
        },
        "invalid_queue_spec" => QueueError::InvalidSpec {
            field: static_field(text("field").as_deref().unwrap_or_default()),
            reason,
        },
        "invalid_duration" => QueueError::InvalidDuration {
            input: text("input").unwrap_or(message),
        },
        "invalid_payload" | "payload_too_large" => QueueError::InvalidPayload { reason },
        "lease_lost" => QueueError::LeaseLost {
            queue,
            task: text("task")
                .or_else(|| ctx.lease.map(|l| l.task.clone()))
                .unwrap_or_default(),
            attempt: number("attempt")
                .and_then(|a| u32::try_from(a).ok())
                .or(ctx.lease.map(|l| l.attempt))
                .unwrap_or_default(),
        },
        "invalid_rate" => QueueError::Core(CoreError::InvalidRate {
            input: text("input").unwrap_or_default(),
            reason,
        }),
        "invalid_burst" => QueueError::Core(CoreError::InvalidBurst {
            burst: number("burst").unwrap_or_default(),
            reason,
        }),
        _ => {
            let transient = error
                .get("transient")
                .and_then(Value::as_bool)
                .unwrap_or(status.is_server_error());
            store_error(
                format!(
                    "the queue server at {} refused to {} ({status}, {code}): {message}",
                    base, ctx.what
                ),
                transient,
            )
        }
    }
}

pub(super) fn store_error(message: String, transient: bool) -> QueueError {
    QueueError::Core(CoreError::Store { message, transient })
}

/// `InvalidSpec::field` is a `&'static str`: the names a server may send, else `request`.
pub(super) fn static_field(field: &str) -> &'static str {
    const FIELDS: &[&str] = &[
        "name",
        "rate",
        "burst",
        "max_attempts",
        "visibility_timeout",
        "visibility_timeout_ms",
        "idle_expiry",
        "idle_expiry_ms",
        "backoff_base",
        "backoff_base_ms",
        "backoff_max",
        "backoff_max_ms",
        "deadline",
        "deadline_ms",
        "active",
        "priority",
        "delay_ms",
        "retry_after_ms",
        "payload",
        "worker",
        "ids",
        "limit",
        "error",
        "task",
        "attempt",
        "lease",
        "server",
    ];
    FIELDS
        .iter()
        .find(|f| **f == field)
        .copied()
        .unwrap_or("request")
}

/// `InvalidName::reason` is a `&'static str`: validate_name's reasons, else a generic one.
pub(super) fn static_name_reason(reason: &str) -> &'static str {
    const REASONS: &[&str] = &[
        "it is empty",
        "it is longer than 128 bytes",
        "only letters, digits and _ - . : are allowed",
    ];
    REASONS
        .iter()
        .find(|r| reason.contains(**r))
        .copied()
        .unwrap_or("the server refused it")
}

/// A reservation as the server sends it: the payload is the task's JSON value itself, which
/// an internally tagged enum cannot keep byte-exact, so the fields are read flat.
#[derive(Deserialize)]
pub(super) struct WireReservation {
    status: String,
    queue: Option<String>,
    task: Option<String>,
    attempt: Option<u32>,
    payload: Option<Box<RawValue>>,
    priority: Option<u32>,
    started_ms: Option<u64>,
    started_us: Option<u64>,
    expires_ms: Option<u64>,
    wait_ms: Option<u64>,
    next_due_ms: Option<u64>,
}

impl WireReservation {
    pub fn into_reservation(self) -> Option<Reservation> {
        Some(match self.status.as_str() {
            "task" => Reservation::Task(Lease {
                queue: self.queue?,
                task: self.task?,
                attempt: self.attempt?,
                payload: self.payload?.get().to_string(),
                priority: self.priority?,
                started_ms: self.started_ms?,
                started_us: self.started_us?,
                expires_ms: self.expires_ms?,
            }),
            "rate_limited" => Reservation::RateLimited {
                wait_ms: self.wait_ms?,
            },
            "empty" => Reservation::Empty {
                next_due_ms: self.next_due_ms,
            },
            "paused" => Reservation::Paused,
            _ => return None,
        })
    }
}

/// A dead task as the server sends it (the payload as its JSON value).
#[derive(Deserialize)]
pub(super) struct WireDead {
    id: String,
    payload: Box<RawValue>,
    priority: u32,
    attempts: u32,
    last_error: String,
    died_ms: u64,
}

impl WireDead {
    pub fn into_task(self) -> DeadTask {
        DeadTask {
            id: self.id,
            payload: self.payload.get().to_string(),
            priority: self.priority,
            attempts: self.attempts,
            last_error: self.last_error,
            died_ms: self.died_ms,
        }
    }
}

/// A `QueueUpdate` as JSON: an absent member keeps the setting, `null` clears it (burst back
/// to strict, no deadline).
pub(super) fn update_body(update: &QueueUpdate) -> Value {
    let mut body = Map::new();
    if let Some(rate) = update.rate {
        body.insert("rate".into(), Value::String(rate.to_string()));
    }
    if let Some(burst) = update.burst {
        body.insert("burst".into(), json!(burst));
    }
    if let Some(active) = update.active {
        body.insert("active".into(), json!(active));
    }
    if let Some(deadline) = update.deadline_ms {
        body.insert("deadline_ms".into(), json!(deadline));
    }
    Value::Object(body)
}
