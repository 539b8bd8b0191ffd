//! The worker processes serving a queue. Each process reports its worker slots every second
//! with a time to live ([`QueueStore::report_workers`](crate::QueueStore::report_workers));
//! the live reports are the queue's fleet. Autoscaled processes share what the queue needs
//! between them instead of each planning for the whole backlog.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The worker processes serving a queue, as their reports that have not expired say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    /// Processes reporting.
    pub processes: u32,
    /// Their worker slots, all together.
    pub slots: u32,
}

/// A process's share of the workers a queue needs: an equal part (rounded up, so the fleet
/// runs at most `processes - 1` more than `wanted`), within `min ..= max`. `processes` counts
/// this one; 0 (no report could be made) plans alone.
pub fn share(wanted: u32, processes: u32, min: u32, max: u32) -> u32 {
    wanted
        .div_ceil(processes.max(1))
        .clamp(min.max(1), max.max(min).max(1))
}

/// The embedded store's reports of one queue: process → (slots, expiry in ms).
#[derive(Debug, Default)]
pub(crate) struct Reports(HashMap<String, (u32, u64)>);

impl Reports {
    /// Records `process`'s slots until `expires_ms` (0 slots: it stopped) and drops the
    /// reports expired at `now_ms`.
    pub(crate) fn report(&mut self, process: &str, slots: u32, expires_ms: u64, now_ms: u64) {
        self.0.retain(|_, &mut (_, expires)| expires > now_ms);
        if slots == 0 || expires_ms <= now_ms {
            self.0.remove(process);
        } else {
            self.0.insert(process.to_string(), (slots, expires_ms));
        }
    }

    /// The fleet at `now_ms`.
    pub(crate) fn fleet(&self, now_ms: u64) -> Fleet {
        let live = self.0.values().filter(|&&(_, expires)| expires > now_ms);
        live.fold(Fleet::default(), |f, &(slots, _)| Fleet {
            processes: f.processes + 1,
            slots: f.slots.saturating_add(slots),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_equal_parts_rounded_up_within_the_bounds() {
        assert_eq!(share(5, 1, 1, 8), 5);
        assert_eq!(share(5, 2, 1, 8), 3);
        assert_eq!(share(5, 3, 1, 8), 2);
        assert_eq!(share(5, 6, 1, 8), 1);
        assert_eq!(share(5, 6, 2, 8), 2, "never below min");
        assert_eq!(share(40, 2, 1, 8), 8, "never above max");
        assert_eq!(share(5, 0, 1, 8), 5, "no fleet known: plans alone");
        assert_eq!(share(0, 3, 0, 0), 1, "at least one slot");
    }

    #[test]
    fn reports_expire_and_a_stopped_process_leaves() {
        let mut r = Reports::default();
        r.report("a", 3, 1_000, 0);
        r.report("b", 2, 1_500, 0);
        assert_eq!(
            r.fleet(500),
            Fleet {
                processes: 2,
                slots: 5
            }
        );
        assert_eq!(
            r.fleet(1_000),
            Fleet {
                processes: 1,
                slots: 2
            },
            "a's report expired"
        );
        r.report("a", 4, 2_000, 1_100);
        r.report("b", 0, 2_000, 1_100);
        assert_eq!(
            r.fleet(1_100),
            Fleet {
                processes: 1,
                slots: 4
            },
            "b stopped"
        );
        r.report("c", 1, 3_000, 2_500);
        assert_eq!(r.0.len(), 1, "expired reports are dropped: {:?}", r.0);
    }
}
