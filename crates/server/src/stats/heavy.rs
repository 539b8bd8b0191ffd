//! The keys denied most often, in bounded memory: the Space-Saving summary (Metwally et al.,
//! 2005). It tracks at most `capacity` keys; a new key takes the place of the least counted
//! one and inherits its count as its possible overcount (`error`). Any key denied more than
//! `total / capacity` times is guaranteed to be in it, so a flood from one key always shows,
//! while a scan of a million distinct keys costs no more memory than a handful.
//!
//! Two generations make it recent: counts go to `current`, and every [`ROTATE_MS`] the
//! current generation becomes the previous one. A report adds both, so it covers the last one
//! to two rotation periods.

use std::collections::HashMap;

use super::report::DeniedKey;

/// How often a generation ends, in ms.
pub const ROTATE_MS: u64 = 60_000;

/// Keys tracked per generation.
pub const CAPACITY: usize = 64;

#[derive(Debug, Default)]
struct Generation {
    /// (key, count, error); `index` maps a key to its slot.
    slots: Vec<(String, u64, u64)>,
    index: HashMap<String, usize>,
}

impl Generation {
    fn add(&mut self, key: &str) {
        if let Some(&i) = self.index.get(key) {
            self.slots[i].1 += 1;
            return;
        }
        if self.slots.len() < CAPACITY {
            self.index.insert(key.to_string(), self.slots.len());
            self.slots.push((key.to_string(), 1, 0));
            return;
        }
        // Replace the least counted key; the newcomer may have been one of its uncounted
        // occurrences, so it starts above it and remembers the bound.
        let Some((i, _)) = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, count, _))| *count)
        else {
            return;
        };
        let min = self.slots[i].1;
        let old = std::mem::replace(&mut self.slots[i], (key.to_string(), min + 1, min));
        self.index.remove(&old.0);
        self.index.insert(key.to_string(), i);
    }
}

/// One policy's summary of denied keys.
#[derive(Debug, Default)]
pub struct HeavyHitters {
    current: Generation,
    previous: Generation,
    /// When `current` began, ms.
    started_ms: u64,
}

impl HeavyHitters {
    /// Counts a denial of `key` at `now_ms`.
    pub fn add(&mut self, key: &str, now_ms: u64) {
        self.rotate(now_ms);
        self.current.add(key);
    }

    fn rotate(&mut self, now_ms: u64) {
        if now_ms >= self.started_ms.saturating_add(ROTATE_MS) {
            // Two periods without a denial leave nothing worth reporting.
            self.previous = if now_ms >= self.started_ms.saturating_add(2 * ROTATE_MS) {
                Generation::default()
            } else {
                std::mem::take(&mut self.current)
            };
            self.current = Generation::default();
            self.started_ms = now_ms;
        }
    }

    /// The `n` keys with the most denials over both generations, most first (ties by key).
    pub fn top(&mut self, n: usize, now_ms: u64) -> Vec<DeniedKey> {
        self.rotate(now_ms);
        let mut merged: HashMap<&str, (u64, u64)> = HashMap::new();
        for (key, count, error) in self.current.slots.iter().chain(&self.previous.slots) {
            let entry = merged.entry(key.as_str()).or_default();
            entry.0 += count;
            entry.1 += error;
        }
        let mut top: Vec<DeniedKey> = merged
            .into_iter()
            .map(|(key, (denied, error))| DeniedKey {
                key: key.to_string(),
                denied,
                error,
            })
            .collect();
        top.sort_by(|a, b| b.denied.cmp(&a.denied).then_with(|| a.key.cmp(&b.key)));
        top.truncate(n);
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_key_tops_the_list_among_a_million_distinct_keys() {
        let mut h = HeavyHitters::default();
        for i in 0..1_000_000u64 {
            h.add(&format!("scan:{i}"), 1);
            if i % 10 == 0 {
                h.add("user:flood", 1);
            }
        }
        let top = h.top(3, 2);
        assert_eq!(top[0].key, "user:flood");
        // Space-Saving never undercounts, and overcounts by at most `error`.
        assert!(top[0].denied >= 100_000, "{top:?}");
        assert!(top[0].denied - top[0].error <= 100_000, "{top:?}");
        assert!(h.current.slots.len() <= CAPACITY);
        assert!(h.current.index.len() <= CAPACITY);
    }

    #[test]
    fn exact_while_keys_fit() {
        let mut h = HeavyHitters::default();
        for (key, n) in [("a", 5), ("b", 9), ("c", 1)] {
            for _ in 0..n {
                h.add(key, 10);
            }
        }
        let top = h.top(2, 10);
        let got: Vec<_> = top
            .iter()
            .map(|k| (k.key.as_str(), k.denied, k.error))
            .collect();
        assert_eq!(got, [("b", 9, 0), ("a", 5, 0)]);
    }

    #[test]
    fn old_denials_age_out_after_two_periods() {
        let mut h = HeavyHitters::default();
        h.add("old", 0);
        h.add("old", 0);
        // One period later the old generation is still reported…
        h.add("new", ROTATE_MS);
        let keys: Vec<_> = h.top(5, ROTATE_MS).into_iter().map(|k| k.key).collect();
        assert_eq!(keys, ["old", "new"]);
        // …two periods later only what came since.
        h.add("newer", 2 * ROTATE_MS + 1);
        let keys: Vec<_> = h
            .top(5, 2 * ROTATE_MS + 1)
            .into_iter()
            .map(|k| k.key)
            .collect();
        assert_eq!(keys, ["new", "newer"]);
        assert!(h.top(5, 10 * ROTATE_MS).is_empty());
    }
}
