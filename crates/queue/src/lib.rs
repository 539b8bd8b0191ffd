//! tollgate's rate-limited job queues.
//!
//! A queue has a rate (`5/60s`): every attempt's start, retries included, takes a token, and
//! a worker takes a task only when a token exists — in one atomic step with the
//! highest-priority ready task and a lease on it ([`QueueStore::reserve`]). The limit is
//! global: every worker on every host shares it. Strict spacing by default (CONTRACT
//! `strict`: no bursts), a burst when asked.
//!
//! - **Stores**: [`MemoryQueues`] (one process) and [`RedisQueues`] (durable with AOF; any
//!   number of hosts), behind one trait, [`QueueStore`].
//! - **Delivery is at-least-once.** A lease lasts the visibility timeout and is renewed by
//!   heartbeats; when it expires (the worker died or hung), the task runs again as its next
//!   attempt, and the old holder's ack or fail is refused ([`QueueError::LeaseLost`]). A
//!   handler must tolerate running twice.
//! - **Retries** back off exponentially with jitter ([`backoff_ms`]); after `max_attempts`
//!   the task goes to the dead-letter queue with its last error. Nothing accepted is lost: a
//!   task ends completed or dead.
//! - **Priorities**: higher first, FIFO within one (by push order: a retried task keeps its
//!   place). Delayed tasks wait before they are ready.
//! - **Expiry**: a queue idle and empty (nothing waiting, delayed, in flight or dead) for its
//!   idle expiry (default 1 h) is removed.
//!
//! ```
//! use tollgate_queue::{MemoryQueues, NewTask, QueueSpec, QueueStore, Reservation};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let queues = MemoryQueues::new();
//! let q = queues.create(QueueSpec::new("5/1s".parse()?).name("emails")).await?;
//! queues.push(&q.name, NewTask::json(r#"{"to":"a@example.com"}"#)?).await?;
//! if let Reservation::Task(lease) = queues.reserve("emails", "worker-1").await? {
//!     // ... send the email ...
//!     queues.ack(&lease).await?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![deny(missing_docs)]

mod error;
pub mod fleet;
mod http;
mod memory;
pub mod plan;
mod redis;
mod spec;
mod store;
mod task;
pub mod worker;

pub use error::QueueError;
pub use http::HttpQueues;
pub use memory::MemoryQueues;
pub use redis::RedisQueues;
pub use spec::{
    DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_IDLE_EXPIRY, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_VISIBILITY_TIMEOUT, MAX_NAME_BYTES, QueueSpec, format_duration, millis, parse_duration,
    validate_name,
};
pub use store::{BoxFuture, QueueResult, QueueStore, backoff_ms};
pub use task::{
    DeadTask, FailOutcome, Lease, MAX_PAYLOAD_BYTES, MAX_PRIORITY, NewTask, PriorityDepth,
    QueueStats, QueueUpdate, Reservation, validate_payload,
};
