//! tollgate's unified rate controller: one API quota shared by a program's parts, by priority.
//!
//! A trading bot shares one exchange limit (say 1000 weight per 30 s) between placing orders,
//! watching positions, scanning markets and housekeeping. [`UnifiedRateController`] keeps the
//! weight of the calls in any rolling window under a capacity (800 by default: 80% of the
//! exchange's limit), splits it between [`OperationCategory`]s, serves waiting requests by
//! [`Priority`], and slows everyone down by [`ThrottleState`] as usage grows.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use tollgate_controller::{
//!     ControllerConfig, OperationCategory, Priority, UnifiedRateController,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tollgate_controller::ControllerError> {
//! let controller = Arc::new(UnifiedRateController::new(ControllerConfig::default()));
//! controller.start_monitoring().await;
//!
//! let permit = controller
//!     .request_permit(5, Priority::Critical, OperationCategory::Trading, "place_order".to_string())
//!     .await?;
//! tokio::time::sleep(permit.delay()).await;
//! let start = Instant::now();
//! /* call the API */
//! permit.complete(start.elapsed().as_millis() as u64).await;
//!
//! let stats = controller.get_stats().await;
//! assert_eq!(stats.usage, 5);
//! println!("{}", stats.format_dashboard());
//! let interval = controller.get_scan_interval().await; // 1 h, 2 h under high load
//! assert_eq!(interval.as_secs(), 3600);
//! # Ok(())
//! # }
//! ```
//!
//! # The guarantees
//!
//! - **The hard cap.** The weight of the calls made in any rolling window never exceeds the
//!   capacity, under any number of concurrent callers — provided each caller starts its call
//!   no earlier than [`Permit::call_at`] (sleep [`Permit::delay`] first). A permit is counted
//!   from its grant until one window after its call time (rounded up to the millisecond),
//!   and a request is granted only if
//!   the weight counted now plus its own fits. Counted from the grant, no later grant can
//!   take capacity promised to a delayed call; counted until a window after the call, the
//!   exchange has forgotten it by then; and since usage can only fall until the next grant,
//!   checking at each grant covers every window of call times. Each permit is therefore
//!   counted for its delay longer than the exchange counts it: at most 1 s in 30 s with the
//!   defaults.
//! - **Categories.** A non-Critical request is granted only if its category stays within
//!   its share (70/20/10% by default). Critical requests may exceed their share, never the
//!   capacity.
//! - **The Critical reserve.** Where the design this comes from granted Critical requests
//!   *anyway* once their SLA had passed — which breaks the cap — tollgate keeps a reserve
//!   ([`ControllerConfig::critical_reserve_percent`], 5% by default) that only Critical
//!   requests may use: the others are granted only while usage stays within
//!   `capacity − reserve`. A Critical request that still cannot be granted within its SLA
//!   gets [`ControllerError::SlaTimeout`] like any other, and the violation is counted.
//! - **Queues.** A request that does not fit, or that arrives while requests of its priority
//!   or above wait, waits in its priority's queue. The monitoring task (every 100 ms) serves
//!   the queues highest priority first, FIFO within a priority, at most 10/5/2/1 requests per
//!   priority per cycle by tier — so every tier keeps serving every priority while capacity
//!   remains, and a long urgent queue cannot starve the others. A request waits at most its
//!   priority's SLA (100 ms, 500 ms, 2 s, 10 s) and then fails with
//!   [`ControllerError::SlaTimeout`].
//! - **Bad input** — a weight of 0, a weight that could never be granted to its priority and
//!   category, shares that do not sum to 100%, tiers out of order — is a typed error
//!   ([`ControllerError`], [`ConfigError`]), never a panic and never a request left to wait
//!   for a permit that cannot come. [`ControllerConfig::default`] is valid; other
//!   configurations are validated by [`ControllerConfigBuilder::build`].
//!
//! # Throttling
//!
//! | tier | usage | speed | delay | served per priority per cycle |
//! |---|---|---|---|---|
//! | Normal | under 60% | 100% | 10–20 ms | 10 |
//! | Moderate | from 60% | 75% | 50–100 ms | 5 |
//! | Heavy | from 80%, until under 60% | 40% | 200–400 ms | 2 |
//! | Emergency | from 90% | 15% | 500–1000 ms | 1 |
//!
//! Each permit carries a delay drawn from its tier's range; the speed is the tier's nominal
//! throughput, realised by the delays and the per-cycle service limit. Scans should run
//! every [`get_scan_interval`](UnifiedRateController::get_scan_interval): 1 h, 2 h while
//! usage is at or above 80%. `tracing` events report tier changes, usage reaching 90%
//! (`HIGH CAPACITY USAGE`), scan interval changes and SLA violations (`SLA VIOLATION`).
//!
//! # Several processes, one exchange limit
//!
//! [`UnifiedRateController::with_shared_budget`] keeps the window in a tollgate store
//! ([`tollgate_core::DynStore`]; Redis for several hosts) instead of in the process: see
//! [`SharedBudget`]. Every instance then sees the usage of all and the cap holds for all of
//! them together; queues and priorities stay per process, the Critical reserve is common.
#![deny(missing_docs)]

mod config;
mod controller;
mod cycle;
mod error;
mod events;
mod permit;
mod queue;
mod report;
mod shared;
mod state;
mod stats;
mod tiers;
mod types;
mod validate;
mod window;

pub use config::{CategoryShares, ControllerConfig, ControllerConfigBuilder, TierSettings};
pub use controller::UnifiedRateController;
pub use error::{ConfigError, ControllerError};
pub use permit::Permit;
pub use report::{MIN_REPORT_INTERVAL, ReportError};
pub use shared::SharedBudget;
pub use stats::{CategoryUsage, ControllerStats, RequestRecord};
pub use types::{OperationCategory, PerPriority, Priority, ThrottleState};
