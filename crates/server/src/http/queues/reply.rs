//! What the queue routes answer: queue errors as HTTP errors (with detail members from which
//! `tollgate_queue::HttpQueues` rebuilds the same `QueueError`), and leases and dead tasks
//! with their payloads as JSON values.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tollgate_core::Error as CoreError;
use tollgate_queue::{DeadTask, Lease, QueueError};

use crate::ApiError;

/// Why a queue route failed: the API's own errors (body, auth), or the queue store's.
pub(crate) enum Failure {
    Api(ApiError),
    Queue(QueueError, StatusCode),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure::Api(e)
    }
}

impl From<QueueError> for Failure {
    fn from(e: QueueError) -> Failure {
        let status = status(&e);
        Failure::Queue(e, status)
    }
}

/// unknown_queue 404; queue_exists and lease_lost 409 (a conflict with the queue's state);
/// bad input 400; a store that cannot answer 503 when it may recover, else 500.
fn status(e: &QueueError) -> StatusCode {
    match e {
        QueueError::UnknownQueue { .. } => StatusCode::NOT_FOUND,
        QueueError::QueueExists { .. } | QueueError::LeaseLost { .. } => StatusCode::CONFLICT,
        QueueError::Core(CoreError::Store { .. } | CoreError::StoreFull { .. }) => {
            if e.is_transient() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The members beyond code and message: what the error is about, so a client can rebuild it.
fn details(e: &QueueError) -> Map<String, Value> {
    let v = match e {
        QueueError::UnknownQueue { name } | QueueError::QueueExists { name } => {
            json!({ "queue": name })
        }
        QueueError::InvalidName { name, reason } => json!({ "queue": name, "reason": reason }),
        QueueError::InvalidSpec { field, reason } => json!({ "field": field, "reason": reason }),
        QueueError::InvalidDuration { input } => json!({ "input": input }),
        QueueError::InvalidPayload { reason } => json!({ "reason": reason }),
        QueueError::LeaseLost {
            queue,
            task,
            attempt,
        } => json!({ "queue": queue, "task": task, "attempt": attempt }),
        QueueError::Core(CoreError::InvalidRate { input, reason }) => {
            json!({ "input": input, "reason": reason })
        }
        QueueError::Core(CoreError::InvalidBurst { burst, reason }) => {
            json!({ "burst": burst, "reason": reason })
        }
        QueueError::Core(core) => json!({ "transient": core.is_transient() }),
        _ => json!({}),
    };
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (e, status) = match self {
            Failure::Api(e) => return e.into_response(),
            Failure::Queue(e, status) => (e, status),
        };
        if status.is_server_error() {
            tracing::warn!(code = e.code(), "queue store: {e}");
        }
        let mut inner = details(&e);
        inner.insert("code".into(), e.code().into());
        inner.insert("message".into(), e.to_string().into());
        (status, Json(json!({ "error": inner }))).into_response()
    }
}

/// The stored payload as the JSON value it is (the stores keep only validated JSON).
fn raw_payload(payload: &str) -> Result<Box<RawValue>, QueueError> {
    RawValue::from_string(payload.to_string()).map_err(|e| {
        QueueError::Core(CoreError::Store {
            message: format!("the queue store holds a payload that is not JSON: {e}"),
            transient: false,
        })
    })
}

/// `reserve`'s answer when it leased a task: a `Reservation::Task` with the payload as JSON.
#[derive(Serialize)]
pub(crate) struct LeaseBody<'a> {
    status: &'static str,
    queue: &'a str,
    task: &'a str,
    attempt: u32,
    payload: Box<RawValue>,
    priority: u32,
    started_ms: u64,
    started_us: u64,
    expires_ms: u64,
}

impl<'a> LeaseBody<'a> {
    pub(crate) fn new(lease: &'a Lease) -> Result<LeaseBody<'a>, QueueError> {
        Ok(LeaseBody {
            status: "task",
            queue: &lease.queue,
            task: &lease.task,
            attempt: lease.attempt,
            payload: raw_payload(&lease.payload)?,
            priority: lease.priority,
            started_ms: lease.started_ms,
            started_us: lease.started_us,
            expires_ms: lease.expires_ms,
        })
    }
}

/// A dead task with its payload as JSON.
#[derive(Serialize)]
pub(crate) struct DeadBody<'a> {
    id: &'a str,
    payload: Box<RawValue>,
    priority: u32,
    attempts: u32,
    last_error: &'a str,
    died_ms: u64,
}

impl<'a> DeadBody<'a> {
    pub(crate) fn new(task: &'a DeadTask) -> Result<DeadBody<'a>, QueueError> {
        Ok(DeadBody {
            id: &task.id,
            payload: raw_payload(&task.payload)?,
            priority: task.priority,
            attempts: task.attempts,
            last_error: &task.last_error,
            died_ms: task.died_ms,
        })
    }
}
