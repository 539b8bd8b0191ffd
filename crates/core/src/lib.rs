//! The pure core of tollgate: the rate grammar, the four algorithms, decisions, errors, the
//! clock abstraction and the [`Store`] trait. Nothing here performs I/O or reads a clock by
//! itself: every algorithm is a function of a key's state, the limit and `now`.
//!
//! ```
//! use tollgate_core::{Algorithm, FakeClock, Clock, Gcra, Limit, LimitState};
//! let limit = Limit::new("2/s".parse()?, Algorithm::Gcra, None)?;
//! let clock = FakeClock::at_millis(1_000);
//! let mut state = Gcra::default();
//! assert!(state.apply(&limit, clock.now(), 1).allowed);
//! assert!(state.apply(&limit, clock.now(), 1).allowed);
//! let denied = state.apply(&limit, clock.now(), 1);
//! assert!(!denied.allowed);
//! assert_eq!(denied.retry_after_ms, 500);
//! # Ok::<(), tollgate_core::Error>(())
//! ```
#![deny(missing_docs)]

mod clock;
mod decision;
mod error;
pub mod gcra;
mod limit;
mod rate;
mod state;
mod store;
pub mod window;

pub use clock::{Clock, FakeClock, Nanos, SystemClock, ceil_ms};
pub use decision::{Admission, Check, Decision, MultiDecision};
pub use error::{CapacityExceeded, Error};
pub use gcra::Gcra;
pub use limit::{Algorithm, Family, Limit, MAX_KEY_BYTES, validate_key};
pub use rate::{MAX_COUNT, Rate, Unit};
pub use state::LimitState;
pub use store::{BoxFuture, DynStore, Store};
pub use window::{FixedWindow, SlidingLog};
