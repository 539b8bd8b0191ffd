//! Queues over HTTP: a client of `tollgate serve`'s `/v1/queues` routes, so workers and the
//! CLI can reach a server's queues (which may live in its embedded store) like any other store.
//!
//! The server is the authority: the client checks only what it needs to build a request (a
//! queue name usable in a URL path, a payload that is JSON) and maps the server's error JSON
//! (`{"error":{"code":…,"message":…}}` and its detail members) back to the same
//! [`QueueError`] variants the other stores return. A server that cannot be reached is a
//! transient store error, like a Redis that is down.

use std::time::Duration;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::QueueError;
use crate::fleet::Fleet;
use crate::spec::{QueueSpec, millis, validate_name};
use crate::store::{BoxFuture, QueueResult, QueueStore};
use crate::task::{DeadTask, FailOutcome, Lease, NewTask, QueueStats, QueueUpdate, Reservation};

mod wire;
use wire::{Ctx, WireDead, WireReservation, refusal, store_error, update_body};

/// Queues of a `tollgate serve` reached over HTTP. Cloning shares the connection pool.
#[derive(Clone)]
pub struct HttpQueues {
    client: reqwest::Client,
    /// The base URL, ending in `/`.
    base: Url,
    timeout: Duration,
    token: Option<String>,
}

// By hand, so that the token stays out of logs.
impl std::fmt::Debug for HttpQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpQueues")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .field("token", &self.token.as_ref().map(|_| "set"))
            .finish()
    }
}

impl HttpQueues {
    /// How long a request may take, by default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A client of the server at `base_url` (`http://host:port`, optionally with a path
    /// prefix). The URL is checked here; nothing is sent until the first operation.
    pub fn new(base_url: &str) -> Result<HttpQueues, QueueError> {
        let bad = |reason: String| QueueError::InvalidSpec {
            field: "server",
            reason: format!("{base_url:?} {reason}"),
        };
        let mut base =
            Url::parse(base_url.trim()).map_err(|e| bad(format!("is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad("is not an http:// or https:// URL with a host".into()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("must not have a query or a fragment".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| store_error(format!("cannot build an HTTP client: {e}"), false))?;
        Ok(HttpQueues {
            client,
            base,
            timeout: HttpQueues::DEFAULT_TIMEOUT,
            token: None,
        })
    }

    /// Sets how long one request may take in all (connecting included).
    pub fn timeout(mut self, timeout: Duration) -> HttpQueues {
        self.timeout = timeout;
        self
    }

    /// Sends `Authorization: Bearer <token>`: a server whose config sets `admin_token`
    /// requires it on every queue route.
    pub fn bearer_token(mut self, token: impl Into<String>) -> HttpQueues {
        self.token = Some(token.into());
        self
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `v1/queues/<queue>/<rest…>` under the base URL.
    fn url(&self, queue: Option<&str>, rest: &[&str]) -> QueueResult<Url> {
        let mut path = String::from("v1/queues");
        if let Some(queue) = queue {
            addressable(queue)?;
            path.push('/');
            path.push_str(queue);
        }
        for part in rest {
            path.push('/');
            path.push_str(part);
        }
        // Names are letters, digits and `_ - . :`, all safe in a path segment.
        self.base
            .join(&path)
            .map_err(|e| store_error(format!("cannot build a URL for {path}: {e}"), false))
    }

    /// Sends one request and reads the JSON answer as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        ctx: Ctx<'_>,
    ) -> QueueResult<T> {
        let mut req = self.client.request(method, url).timeout(self.timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let resp = req.send().await.map_err(|e| self.transport(&e, ctx))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e, ctx))?;
        if !status.is_success() {
            return Err(refusal(&self.base, status, &bytes, ctx));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            store_error(
                format!(
                    "the queue server at {} sent an unexpected reply to {}: {e}",
                    self.base, ctx.what
                ),
                false,
            )
        })
    }

    /// A request that got no answer: the server is down, unreachable or too slow.
    fn transport(&self, e: &reqwest::Error, ctx: Ctx<'_>) -> QueueError {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        if e.is_builder() {
            // Nothing was sent: a bad token or URL will not get better by retrying.
            let message = format!(
                "cannot build a request to {} ({}): {detail}",
                self.base, ctx.what
            );
            return store_error(message, false);
        }
        let message = if e.is_timeout() {
            format!(
                "the queue server at {} did not answer within {:?} ({}): {detail}",
                self.base, self.timeout, ctx.what
            )
        } else if e.is_connect() {
            format!(
                "the queue server at {} is unreachable ({}): {detail}. Is `tollgate serve` \
                 running there?",
                self.base, ctx.what
            )
        } else {
            format!(
                "the queue server at {} is unreachable ({}): {detail}",
                self.base, ctx.what
            )
        };
        store_error(message, true)
    }

    /// A call about a held lease: the server needs only the task and the attempt.
    async fn lease_call<T: DeserializeOwned>(
        &self,
        lease: &Lease,
        op: &str,
        body: Value,
        what: &str,
    ) -> QueueResult<T> {
        let ctx = Ctx {
            what,
            queue: Some(&lease.queue),
            lease: Some(lease),
        };
        let url = self.url(Some(&lease.queue), &[op])?;
        self.call(Method::POST, url, Some(to_vec(&body)?), ctx)
            .await
    }

    async fn push_task(&self, queue: &str, task: NewTask) -> QueueResult<String> {
        #[derive(serde::Serialize)]
        struct PushBody<'a> {
            payload: &'a RawValue,
            priority: u32,
            delay_ms: u64,
        }
        #[derive(Deserialize)]
        struct Pushed {
            id: String,
        }
        // The payload travels as the JSON value it is; it must parse to be embedded.
        let payload: &RawValue =
            serde_json::from_str(&task.payload).map_err(|e| QueueError::InvalidPayload {
                reason: format!("not JSON: {e}"),
            })?;
        let body = to_vec(&PushBody {
            payload,
            priority: task.priority,
            delay_ms: task.delay_ms,
        })?;
        let ctx = ctx("push a task", queue);
        let url = self.url(Some(queue), &["tasks"])?;
        let pushed: Pushed = self.call(Method::POST, url, Some(body), ctx).await?;
        Ok(pushed.id)
    }

    async fn reserve_task(&self, queue: &str, worker: &str) -> QueueResult<Reservation> {
        let ctx = ctx("reserve a task", queue);
        let url = self.url(Some(queue), &["reserve"])?;
        let body = to_vec(&json!({ "worker": worker }))?;
        let wire: WireReservation = self.call(Method::POST, url, Some(body), ctx).await?;
        wire.into_reservation()
            .ok_or_else(|| QueueError::bad_reply("a reservation without its fields"))
    }

    /// The server lists at most 1000 dead tasks a request, whatever `limit` says.
    async fn dead_tasks(&self, queue: &str, limit: u64) -> QueueResult<Vec<DeadTask>> {
        #[derive(Deserialize)]
        struct Dead {
            dead: Vec<WireDead>,
        }
        let mut url = self.url(Some(queue), &["dead"])?;
        url.set_query(Some(&format!("limit={limit}")));
        let dead: Dead = self
            .call(Method::GET, url, None, ctx("list dead tasks", queue))
            .await?;
        Ok(dead.dead.into_iter().map(WireDead::into_task).collect())
    }

    /// `{"<key>": n}` answers.
    async fn count(
        &self,
        method: Method,
        queue: &str,
        rest: &[&str],
        body: Option<Value>,
        key: &str,
        what: &str,
    ) -> QueueResult<u64> {
        let url = self.url(Some(queue), rest)?;
        let body = body.map(|b| to_vec(&b)).transpose()?;
        let answer: Map<String, Value> = self.call(method, url, body, ctx(what, queue)).await?;
        answer
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| QueueError::bad_reply(format!("no {key:?} count")))
    }
}

/// A queue name that a URL path can carry: `.` and `..` are valid names, but every HTTP
/// client resolves them away.
fn addressable(name: &str) -> QueueResult<()> {
    validate_name(name)?;
    if name == "." || name == ".." {
        return Err(QueueError::InvalidName {
            name: name.to_string(),
            reason: "`.` and `..` cannot be addressed in a URL path",
        });
    }
    Ok(())
}

fn ctx<'a>(what: &'a str, queue: &'a str) -> Ctx<'a> {
    Ctx {
        what,
        queue: Some(queue),
        lease: None,
    }
}

/// A lease as the server names it.
fn lease_ref(lease: &Lease) -> Value {
    json!({ "task": lease.task, "attempt": lease.attempt })
}

fn to_vec(value: &impl serde::Serialize) -> QueueResult<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| store_error(format!("cannot encode a request: {e}"), false))
}

impl QueueStore for HttpQueues {
    fn create(&self, spec: QueueSpec) -> BoxFuture<'_, QueueResult<QueueStats>> {
        Box::pin(async move {
            if let Some(name) = &spec.name {
                addressable(name)?;
            }
            let body = to_vec(&spec)?;
            let url = self.url(None, &[])?;
            let ctx = Ctx {
                what: "create a queue",
                queue: spec.name.as_deref(),
                lease: None,
            };
            self.call(Method::POST, url, Some(body), ctx).await
        })
    }
    fn list(&self) -> BoxFuture<'_, QueueResult<Vec<QueueStats>>> {
        #[derive(Deserialize)]
        struct Listed {
            queues: Vec<QueueStats>,
        }
        Box::pin(async move {
            let url = self.url(None, &[])?;
            let ctx = Ctx {
                what: "list the queues",
                ..Ctx::default()
            };
            let listed: Listed = self.call(Method::GET, url, None, ctx).await?;
            Ok(listed.queues)
        })
    }
    fn stats<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<QueueStats>> {
        Box::pin(async move {
            let url = self.url(Some(queue), &[])?;
            self.call(Method::GET, url, None, ctx("read a queue", queue))
                .await
        })
    }
    fn update<'a>(
        &'a self,
        queue: &'a str,
        update: QueueUpdate,
    ) -> BoxFuture<'a, QueueResult<QueueStats>> {
        Box::pin(async move {
            let url = self.url(Some(queue), &[])?;
            let body = to_vec(&update_body(&update))?;
            self.call(Method::PATCH, url, Some(body), ctx("update a queue", queue))
                .await
        })
    }
    fn remove<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<bool>> {
        Box::pin(async move {
            let url = self.url(Some(queue), &[])?;
            let answer: Map<String, Value> = self
                .call(Method::DELETE, url, None, ctx("remove a queue", queue))
                .await?;
            answer
                .get("removed")
                .and_then(Value::as_bool)
                .ok_or_else(|| QueueError::bad_reply("no \"removed\" flag"))
        })
    }
    fn clear<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(self.count(
            Method::POST,
            queue,
            &["clear"],
            None,
            "cleared",
            "clear a queue",
        ))
    }
    fn push<'a>(&'a self, queue: &'a str, task: NewTask) -> BoxFuture<'a, QueueResult<String>> {
        Box::pin(self.push_task(queue, task))
    }
    fn reserve<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Reservation>> {
        Box::pin(self.reserve_task(queue, worker))
    }
    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(async move {
            let answer: Map<String, Value> = self
                .lease_call(lease, "heartbeat", lease_ref(lease), "renew a lease")
                .await?;
            answer
                .get("expires_ms")
                .and_then(Value::as_u64)
                .ok_or_else(|| QueueError::bad_reply("no \"expires_ms\""))
        })
    }
    fn ack<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<()>> {
        Box::pin(async move {
            let _: Value = self
                .lease_call(lease, "ack", lease_ref(lease), "acknowledge a task")
                .await?;
            Ok(())
        })
    }
    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        error: &'a str,
        retry_after: Option<Duration>,
    ) -> BoxFuture<'a, QueueResult<FailOutcome>> {
        Box::pin(async move {
            let body = json!({
                "lease": lease_ref(lease),
                "error": error,
                "retry_after_ms": retry_after.map(crate::spec::millis),
            });
            self.lease_call(lease, "fail", body, "fail a task").await
        })
    }
    fn dead<'a>(&'a self, queue: &'a str, limit: u64) -> BoxFuture<'a, QueueResult<Vec<DeadTask>>> {
        Box::pin(self.dead_tasks(queue, limit))
    }
    fn retry_dead<'a>(
        &'a self,
        queue: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, QueueResult<u64>> {
        let body = json!({ "ids": ids });
        Box::pin(self.count(
            Method::POST,
            queue,
            &["dead", "retry"],
            Some(body),
            "retried",
            "retry dead tasks",
        ))
    }
    fn purge_dead<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(self.count(
            Method::DELETE,
            queue,
            &["dead"],
            None,
            "purged",
            "purge dead tasks",
        ))
    }
    fn report_workers<'a>(
        &'a self,
        queue: &'a str,
        process: &'a str,
        slots: u32,
        ttl: Duration,
    ) -> BoxFuture<'a, QueueResult<Fleet>> {
        Box::pin(async move {
            let url = self.url(Some(queue), &["workers"])?;
            let body = json!({"worker": process, "slots": slots, "ttl_ms": millis(ttl)});
            let ctx = ctx("report a worker process", queue);
            self.call(Method::POST, url, Some(to_vec(&body)?), ctx)
                .await
        })
    }
}
