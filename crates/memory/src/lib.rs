//! tollgate's embedded in-memory store: the default, with nothing to set up.
//!
//! [`MemoryStore`] holds many keys (sharded, no global lock, bounded memory);
//! [`DirectLimiter`] holds one (GCRA is a single atomic compare-and-swap). Both decide with
//! the pure algorithms of `tollgate-core`.
//!
//! ```
//! use tollgate_memory::{MemoryStore, WhenFull};
//! use tollgate_core::{Check, Limit};
//! let store = MemoryStore::builder().max_keys(10_000).when_full(WhenFull::Reject).build();
//! let global = Limit::gcra("10000/min".parse()?);
//! let per_user = Limit::gcra("100/min".parse()?);
//! let batch = [Check::new("global", global, 1), Check::new("user:7", per_user, 1)];
//! assert!(store.check_all(&batch)?.allowed);
//! # Ok::<(), tollgate_core::Error>(())
//! ```
#![deny(missing_docs)]

mod direct;
mod shard;
mod store;

pub use direct::DirectLimiter;

/// A value on cache lines of its own (128 bytes: two lines, as adjacent-line prefetchers
/// pair them), so that threads writing it do not slow down readers of its neighbours.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);
pub use store::{DEFAULT_MAX_KEYS, MemoryStore, MemoryStoreBuilder, WhenFull};
