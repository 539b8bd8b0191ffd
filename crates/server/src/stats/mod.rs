//! What a running server has been doing, for `GET /v1/stats`, the web dashboard,
//! `tollgate monitor` and the alert rules: see [`report`] for the shape of a snapshot.
//!
//! Checks record only what cannot be read later: their latency (one atomic add) and, when
//! denied, the key (a bounded heavy-hitters summary per policy). Decision totals come from the
//! metrics' counters; once a second the server takes a point of every total and turns the
//! difference into rates and a one-second sample for the charts.

mod collect;
mod heavy;
mod latency;
pub mod report;

pub use collect::{Inputs, MAX_CONTROLLERS, Stats};
pub use report::*;
