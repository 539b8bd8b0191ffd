//! tollgate's Redis store: the [`Store`](tollgate_core::Store) trait on a Redis server shared
//! by any number of processes on any number of hosts.
//!
//! ```no_run
//! use tollgate_core::{Algorithm, Check, Limit, Store};
//! use tollgate_redis::{RedisConfig, RedisStore};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::parse("redis://:secret@127.0.0.1:6379/0")?
//!     .command_timeout(Duration::from_millis(100));
//! let store = RedisStore::connect(&config).await?;
//! let per_user = Limit::new("100/min".parse()?, Algorithm::Gcra, Some(20))?;
//! let decision = store.check("user:42", &per_user, 1).await?;
//! if !decision.allowed {
//!     println!("retry in {} ms", decision.retry_after_ms);
//! }
//! let global = Limit::new("10000/min".parse()?, Algorithm::SlidingWindow, None)?;
//! let both = store
//!     .check_all(&[Check::new("user:42", per_user, 1), Check::new("global", global, 1)])
//!     .await?;
//! println!("batch allowed: {}", both.allowed);
//! # Ok(())
//! # }
//! ```
//!
//! # How it decides
//!
//! Every decision is one Lua script (`src/scripts/*.lua`, one file per operation) run by
//! EVALSHA, so it is atomic on the server; the scripts are loaded when the store connects
//! and reloaded by themselves after Redis restarts or `SCRIPT FLUSH`. The clock is Redis's
//! `TIME`: hosts whose clocks disagree still agree on every limit, and no client reads its
//! own clock. The algorithms and the decision fields are those of the in-memory store
//! (CONTRACT §3–§4), with these differences:
//!
//! - **Microsecond resolution.** Redis's `TIME` counts microseconds and Lua counts in
//!   doubles, so the scripts decide in whole microseconds: T = PERIOD / COUNT is rounded *up*
//!   to whole µs (at least 1), which keeps every guarantee (a rate faster than one per µs is
//!   enforced as one per µs). Limits whose BURST × T, or whose PERIOD, exceed 2^52 µs (about
//!   142 years) are refused with `invalid_burst` / `invalid_rate`.
//! - **Expiry.** Every key Redis holds carries an expiry at the moment it is back to full
//!   capacity (rounded up to the millisecond), so idle keys vanish by themselves;
//!   [`tracked_keys`](tollgate_core::Store::tracked_keys) is `None`. Run the limiter's Redis
//!   with `maxmemory-policy noeviction` (or with room to spare): a key evicted early forgets
//!   what it admitted.
//! - **Keys.** State lives under `tollgate:{KEY}:g`, `:s` and `:f` (see [`keys`]), one cluster
//!   slot per user key; keys that carry their own `{hash tag}` keep it.
//!
//! # Connecting
//!
//! [`RedisConfig::parse`] takes `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, `rediss://…`
//! (TLS, with the system's roots or [`RedisConfig::tls_ca_pem`]),
//! `redis+sentinel://[USER:PASSWORD@]H1:P1,H2:P2/MASTER[/DB]` and
//! `redis+cluster://[USER:PASSWORD@]H1:P1,H2:P2,…`. Sentinel and Cluster URLs parse, but
//! [`RedisStore::connect`] refuses them for now (`not supported yet`).
//!
//! # Failures
//!
//! A failure is an [`Error::Store`](tollgate_core::Error::Store) (code `store_unavailable`)
//! that says whether it is transient: timeouts, refused or dropped connections, `LOADING`,
//! `BUSY`, `READONLY`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN` and `OOM` are; wrong
//! credentials, ACL denials, a key of the wrong type and other script errors are not. Each
//! call is bounded by the command timeout (default 250 ms) in all, including any wait for a
//! reconnection; connecting is bounded by the connect timeout (default 1 s). A call that
//! times out may still have been decided by Redis. The store reconnects by itself.
#![deny(missing_docs)]

mod config;
mod error;
pub mod guard;
pub mod keys;
mod scripts;
mod store;

pub use config::{EXPECTED_FORMS, InvalidUrl, Node, RedisConfig, RedisUrl, Topology};
pub use guard::{GuardConfig, Guarded, OnStoreFailure};
pub use scripts::MAX_SPAN_US;
pub use store::{RedisStore, TimedDecision, TimedMultiDecision};
