//! tollgate: rate limiting with exact guarantees, in one process or shared by many.
//!
//! This crate re-exports the public API of tollgate's crates, like `tokio` does:
//! the algorithms, rates and decisions of `tollgate-core` at the root, the stores in
//! [`memory`], and the unified rate controller in [`controller`].
//!
//! ```
//! use tollgate::{Algorithm, Limit, memory::MemoryStore};
//! let store = MemoryStore::new();
//! let limit = Limit::new("100/60s".parse()?, Algorithm::Gcra, Some(20))?;
//! let decision = store.check("user:1", &limit, 1)?;
//! assert!(decision.allowed);
//! assert_eq!((decision.limit, decision.remaining), (20, 19));
//! # Ok::<(), tollgate::Error>(())
//! ```
#![deny(missing_docs)]

pub use tollgate_core::*;

/// The embedded in-memory store.
pub mod memory {
    pub use tollgate_memory::*;
}

/// The unified rate controller: one API quota (say, an exchange's weight limit) shared by a
/// program's parts by priority, category and throttle tier, with a hard cap on every rolling
/// window. See [`controller::UnifiedRateController`].
///
/// ```
/// use tollgate::controller::{ControllerConfig, ThrottleState, UnifiedRateController};
/// let controller = UnifiedRateController::new(ControllerConfig::default());
/// assert_eq!(controller.config().capacity(), 800);
/// assert_eq!(controller.config().tier(ThrottleState::Heavy).enter_at_percent, 80);
/// ```
pub mod controller {
    pub use tollgate_controller::*;
}
