//! `/v1/queues`: the job queues over HTTP (the routes are listed in [`routes`]; the README's
//! "Queue HTTP API" and `/openapi.json` describe them). Bodies are the queue types' JSON, with
//! one difference, which keeps payloads byte-exact and readable: a task's payload is pushed and
//! handed out as the JSON value itself, not as a string of JSON text.
//!
//! When the config sets `admin_token`, every queue route needs it: queues hold payloads and
//! accept work, so they are not open where the admin routes are closed.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tollgate_queue::{
    Lease, MAX_PAYLOAD_BYTES, MAX_PRIORITY, NewTask, QueueError, QueueSpec, QueueUpdate,
    Reservation, validate_name,
};

use super::AppState;
use super::admin::Admin;
use super::body::{JsonBody, is_json, read_limited};
use super::error::{error, invalid_request};
use crate::ApiError;

mod reply;
use reply::Failure;

/// A push's body may hold a payload of [`MAX_PAYLOAD_BYTES`] and the rest of the request.
const PUSH_BODY_LIMIT: usize = MAX_PAYLOAD_BYTES + 64 * 1024;
/// The most dead tasks one `GET …/dead` lists.
const MAX_DEAD_LIMIT: u64 = 1000;
/// The longest worker id.
const MAX_WORKER_BYTES: usize = 256;

type Answer = Result<Response, Failure>;

/// Every queue route.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/queues", get(list).post(create))
        .route("/v1/queues/{name}", get(show).patch(update).delete(remove))
        .route("/v1/queues/{name}/clear", post(clear))
        .route("/v1/queues/{name}/tasks", post(push))
        .route("/v1/queues/{name}/reserve", post(reserve))
        .route("/v1/queues/{name}/ack", post(ack))
        .route("/v1/queues/{name}/heartbeat", post(heartbeat))
        .route("/v1/queues/{name}/fail", post(fail))
        .route("/v1/queues/{name}/dead", get(dead).delete(purge_dead))
        .route("/v1/queues/{name}/dead/retry", post(retry_dead))
        .route("/v1/queues/{name}/workers", post(report_workers))
}

/// The queue named in the path, checked.
struct QueueName(String);

impl FromRequestParts<AppState> for QueueName {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                invalid_request(format!("bad queue name in the path: {}", e.body_text()))
            })?;
        validate_name(&name)?;
        Ok(QueueName(name))
    }
}

fn ok(body: impl Serialize) -> Answer {
    Ok(Json(body).into_response())
}

fn created(body: impl Serialize) -> Answer {
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn bad_field(field: &'static str, reason: impl Into<String>) -> QueueError {
    QueueError::InvalidSpec {
        field,
        reason: reason.into(),
    }
}

/// A whole number ≥ 0 and ≤ `max`, or nothing (absent or `null`); else an error naming `field`.
fn whole(field: &'static str, value: Option<&Value>, max: u64) -> Result<Option<u64>, QueueError> {
    let n = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n,
        Some(other) => {
            return Err(bad_field(
                field,
                format!("must be a number, not {}", kind(other)),
            ));
        }
    };
    match (n.as_u64(), n.as_i64()) {
        (Some(v), _) if v <= max => Ok(Some(v)),
        (Some(v), _) => Err(bad_field(field, format!("{v} is over the most, {max}"))),
        (None, Some(v)) => Err(bad_field(field, format!("must not be negative, got {v}"))),
        (None, None) => Err(bad_field(field, format!("must be a whole number, got {n}"))),
    }
}

/// What kind of JSON value `v` is, for errors (the value itself may be long).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks the members a spec or update may carry before serde reads them, so a negative
/// number or a bad rate is an error naming its field rather than serde's generic one.
fn check_members(body: &Map<String, Value>) -> Result<(), QueueError> {
    const NUMBERS: &[(&str, u64)] = &[
        ("burst", u64::MAX),
        ("max_attempts", u32::MAX as u64),
        ("visibility_timeout_ms", u64::MAX),
        ("idle_expiry_ms", u64::MAX),
        ("backoff_base_ms", u64::MAX),
        ("backoff_max_ms", u64::MAX),
        ("deadline_ms", u64::MAX),
    ];
    for &(field, max) in NUMBERS {
        whole(field, body.get(field), max)?;
    }
    for field in ["name", "rate"] {
        if let Some(v) = body.get(field).filter(|v| !v.is_null() && !v.is_string()) {
            return Err(bad_field(field, format!("must be text, not {}", kind(v))));
        }
    }
    if let Some(Value::String(rate)) = body.get("rate") {
        rate.parse::<tollgate_core::Rate>()
            .map_err(QueueError::Core)?;
    }
    if let Some(v) = body
        .get("active")
        .filter(|v| !v.is_null() && !v.is_boolean())
    {
        return Err(bad_field(
            "active",
            format!("must be true or false, not {}", kind(v)),
        ));
    }
    Ok(())
}

async fn list(_: Admin, State(state): State<AppState>) -> Answer {
    let queues = state.service.queues().list().await?;
    ok(json!({ "queues": queues }))
}

async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Answer {
    check_members(&body)?;
    let spec = QueueSpec::deserialize(Value::Object(body))
        .map_err(|e| invalid_request(format!("invalid JSON body: {e}")))?;
    // Valid names, but no URL path can carry them: the queue could never be used.
    if let Some(name @ ("." | "..")) = spec.name.as_deref() {
        let reason = "`.` and `..` cannot be addressed in a URL path";
        let name = name.to_string();
        return Err(QueueError::InvalidName { name, reason }.into());
    }
    created(state.service.queues().create(spec).await?)
}

async fn show(_: Admin, State(state): State<AppState>, QueueName(name): QueueName) -> Answer {
    ok(state.service.queues().stats(&name).await?)
}

async fn update(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Answer {
    check_members(&body)?;
    // Absent keeps a setting; `null` clears burst (back to strict) and deadline_ms.
    let mut update = QueueUpdate::default();
    for (key, value) in &body {
        match key.as_str() {
            "rate" => {
                let rate = value.as_str().map(str::parse).transpose();
                update.rate = rate.map_err(QueueError::Core)?;
            }
            "burst" => update.burst = Some(value.as_u64()),
            "active" => update.active = value.as_bool(),
            "deadline_ms" => update.deadline_ms = Some(value.as_u64()),
            other => {
                return Err(invalid_request(format!(
                    "invalid JSON body: unknown field `{other}`, expected one of `rate`, \
                     `burst`, `active`, `deadline_ms`"
                ))
                .into());
            }
        }
    }
    ok(state.service.queues().update(&name, update).await?)
}

async fn remove(_: Admin, State(state): State<AppState>, QueueName(name): QueueName) -> Answer {
    let removed = state.service.queues().remove(&name).await?;
    ok(json!({ "removed": removed }))
}

async fn clear(_: Admin, State(state): State<AppState>, QueueName(name): QueueName) -> Answer {
    let cleared = state.service.queues().clear(&name).await?;
    ok(json!({ "cleared": cleared }))
}

/// The body of a push. The payload is borrowed as raw JSON text, so it is stored exactly as
/// sent (whitespace, key order and number forms included).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody<'a> {
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default)]
    priority: Option<Value>,
    #[serde(default)]
    delay_ms: Option<Value>,
}

/// Reads a JSON object body of at most `limit` bytes (a push's limit is not the config's).
async fn object_body(req: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    if !is_json(req.headers()) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, sent with Content-Type: application/json",
        ));
    }
    let bytes = read_limited(req, limit).await.map_err(|e| ApiError {
        message: format!(
            "{}: a task's payload may be at most {MAX_PAYLOAD_BYTES} bytes of JSON",
            e.message
        ),
        ..e
    })?;
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(bytes),
        _ => Err(invalid_request(
            "the body must be a JSON object like {\"payload\":{…},\"priority\":0,\"delay_ms\":0}",
        )),
    }
}

async fn push(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    req: Request,
) -> Answer {
    let bytes = object_body(req, PUSH_BODY_LIMIT).await?;
    let body: PushBody<'_> = serde_json::from_slice(&bytes)
        .map_err(|e| invalid_request(format!("invalid JSON body: {e}")))?;
    let payload = body.payload.get();
    if payload.len() > MAX_PAYLOAD_BYTES {
        let e = QueueError::InvalidPayload {
            reason: format!(
                "{} bytes is over the limit of {MAX_PAYLOAD_BYTES} bytes",
                payload.len()
            ),
        };
        return Err(Failure::Queue(e, StatusCode::PAYLOAD_TOO_LARGE));
    }
    let priority = whole("priority", body.priority.as_ref(), MAX_PRIORITY.into())?;
    let priority = priority.unwrap_or(0);
    let task = NewTask {
        payload: payload.to_string(),
        priority: u32::try_from(priority).unwrap_or(u32::MAX),
        delay_ms: whole("delay_ms", body.delay_ms.as_ref(), u64::MAX)?.unwrap_or(0),
    };
    task.validate()?;
    let id = state.service.queues().push(&name, task).await?;
    created(json!({ "id": id }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveBody {
    worker: String,
}

/// A worker's name is 1 to `MAX_WORKER_BYTES` bytes.
fn check_worker(worker: &str) -> Result<(), QueueError> {
    if worker.is_empty() || worker.len() > MAX_WORKER_BYTES {
        let reason = format!("must be 1 to {MAX_WORKER_BYTES} bytes");
        return Err(bad_field("worker", reason));
    }
    Ok(())
}

async fn reserve(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    JsonBody(body): JsonBody<ReserveBody>,
) -> Answer {
    check_worker(&body.worker)?;
    match state.service.queues().reserve(&name, &body.worker).await? {
        Reservation::Task(lease) => ok(reply::LeaseBody::new(&lease)?),
        other => ok(other),
    }
}

/// A lease as a worker names it: the task and the attempt. The rest of a lease (as `reserve`
/// answered it) is accepted and ignored; `queue`, if given, must be the path's.
#[derive(Deserialize)]
struct LeaseRef {
    task: String,
    attempt: Value,
    #[serde(default)]
    queue: Option<String>,
}

impl LeaseRef {
    /// The stores identify a lease by (queue, task, attempt); the other fields are unused.
    fn lease(self, queue: String) -> Result<Lease, Failure> {
        if self.queue.as_ref().is_some_and(|q| *q != queue) {
            return Err(invalid_request(format!(
                "the lease's queue {:?} is not the queue in the path, {queue:?}",
                self.queue.unwrap_or_default()
            ))
            .into());
        }
        let attempt = whole("attempt", Some(&self.attempt), u32::MAX.into())?.unwrap_or(0);
        Ok(Lease {
            queue,
            task: self.task,
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            payload: String::new(),
            priority: 0,
            started_ms: 0,
            started_us: 0,
            expires_ms: 0,
        })
    }
}

async fn ack(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    JsonBody(body): JsonBody<LeaseRef>,
) -> Answer {
    state.service.queues().ack(&body.lease(name)?).await?;
    ok(json!({ "acked": true }))
}

async fn heartbeat(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    JsonBody(body): JsonBody<LeaseRef>,
) -> Answer {
    let expires_ms = state.service.queues().heartbeat(&body.lease(name)?).await?;
    ok(json!({ "expires_ms": expires_ms }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    lease: LeaseRef,
    error: String,
    #[serde(default)]
    retry_after_ms: Option<Value>,
}

async fn fail(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    JsonBody(body): JsonBody<FailBody>,
) -> Answer {
    let retry = whole("retry_after_ms", body.retry_after_ms.as_ref(), u64::MAX)?
        .map(std::time::Duration::from_millis);
    let lease = body.lease.lease(name)?;
    ok(state
        .service
        .queues()
        .fail(&lease, &body.error, retry)
        .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadQuery {
    limit: Option<u64>,
}

async fn dead(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    query: Result<Query<DeadQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|e| {
        invalid_request(format!(
            "{} (expected ?limit=N, a whole number; at most {MAX_DEAD_LIMIT} are listed)",
            e.body_text()
        ))
    })?;
    // "At most `limit`": a larger one is not an error, and a response stays bounded.
    let limit = query.limit.unwrap_or(100).min(MAX_DEAD_LIMIT);
    let dead = state.service.queues().dead(&name, limit).await?;
    let dead = dead
        .iter()
        .map(reply::DeadBody::new)
        .collect::<Result<Vec<_>, _>>()?;
    ok(json!({ "dead": dead }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    ids: Vec<String>,
}

async fn retry_dead(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    JsonBody(body): JsonBody<RetryBody>,
) -> Answer {
    let retried = state.service.queues().retry_dead(&name, &body.ids).await?;
    ok(json!({ "retried": retried }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkersBody {
    worker: String,
    slots: Value,
    ttl_ms: Value,
}

/// The longest a worker process's report may live: it reports every second.
const MAX_REPORT_TTL_MS: u64 = 3_600_000;

async fn report_workers(
    _: Admin,
    State(state): State<AppState>,
    QueueName(name): QueueName,
    JsonBody(body): JsonBody<WorkersBody>,
) -> Answer {
    check_worker(&body.worker)?;
    let required = |field| move || bad_field(field, "is required (0 slots: the process stopped)");
    let slots =
        whole("slots", Some(&body.slots), u32::MAX.into())?.ok_or_else(required("slots"))?;
    let ttl =
        whole("ttl_ms", Some(&body.ttl_ms), MAX_REPORT_TTL_MS)?.ok_or_else(required("ttl_ms"))?;
    let fleet = state
        .service
        .queues()
        .report_workers(
            &name,
            &body.worker,
            u32::try_from(slots).unwrap_or(u32::MAX),
            std::time::Duration::from_millis(ttl),
        )
        .await?;
    ok(fleet)
}

async fn purge_dead(_: Admin, State(state): State<AppState>, QueueName(name): QueueName) -> Answer {
    let purged = state.service.queues().purge_dead(&name).await?;
    ok(json!({ "purged": purged }))
}
