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
//! [`RedisConfig::parse`] takes four forms:
//!
//! - `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`: one server.
//! - `rediss://…`: the same over TLS, with the system's roots or [`RedisConfig::tls_ca_pem`].
//! - `redis+cluster://[USER:PASSWORD@]H1:P1,H2:P2,…`: a Redis Cluster, discovered from any of
//!   the nodes named. Each call goes to the node that owns its keys' slot; redis-rs follows
//!   `MOVED`/`ASK` and reconnects to nodes by itself. All of one key's state shares a slot
//!   (see [`keys`]), so every single-key check and every reset works. A batch
//!   ([`check_all`](RedisStore::check_all)) is one script, and a script may only touch keys of
//!   one slot: a batch whose keys span slots is refused before it is sent, with
//!   `invalid_key` ("a batch on a Redis Cluster must keep its keys in one hash slot: give
//!   them the same hash tag, e.g. {user:1}:global"). [`keys::slot`] tells which slot a key
//!   is in. Scripts are loaded on every primary at connect, and a node that lost them
//!   (restarted, `SCRIPT FLUSH`, a promoted replica) gets them back on its first `NOSCRIPT`.
//!   A master that dies fails the calls on its slots (transient errors, within the command
//!   timeout); the other masters go on answering theirs until Redis itself stops them
//!   (`CLUSTERDOWN` once the dead master is marked failed, unless the cluster runs with
//!   `cluster-require-full-coverage no`). Behind [`Guarded`], set
//!   [`GuardConfig::breaker_per_slot`] so that its breaker does not stop them either.
//! - `redis+sentinel://[USER:PASSWORD@]H1:P1,H2:P2/MASTER[/DB]`: the master that the
//!   sentinels (default port 26379) know as `MASTER`. The store asks the sentinels, connects
//!   to the address named and checks with `ROLE` that it is a master; the credentials are
//!   the master's, and are sent to a sentinel only if it asks for them. A master name no
//!   sentinel knows fails at connect (non-transient). On a failover the store follows the
//!   new master: a call that fails because the master went away (a refused or dropped
//!   connection, a timeout, `READONLY`) fails with a transient error and starts a search
//!   for the master in the background (every 100 ms until one answers), and the calls after
//!   it go to the new master; a background check every second also moves to the master the
//!   sentinels' newest configuration names, which catches a failover whose old master is
//!   still up and accepting writes. The state written before a failover survives only if
//!   it had reached the replica: Redis replication is asynchronous.
//!
//! # Over-limit cache
//!
//! With [`RedisConfig::over_limit_cache`], a key that Redis has just denied is answered
//! without a round trip for as long as that denial proves Redis would deny it too: only ever
//! a denial, exact by construction (the argument and its limits are in [`cache`]).
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

pub mod cache;
mod config;
mod connection;
mod error;
mod eval;
pub mod guard;
pub mod keys;
mod scripts;
mod sentinel;
mod store;

pub use config::{EXPECTED_FORMS, InvalidUrl, Node, RedisConfig, RedisUrl, Topology};
pub use eval::{BASE_LUA, COMMON_LUA, LuaScript};
pub use guard::{GuardConfig, Guarded, OnStoreFailure};
pub use scripts::MAX_SPAN_US;
pub use store::{RedisStore, TimedDecision, TimedMultiDecision};
