//! The tallies of a replay and the two ways of printing them.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::{self, Write};

use serde::Serialize;

/// How many keys the summary lists.
pub const TOP_KEYS: usize = 10;

/// Requests, admissions and denials per key. Memory grows with the number of distinct
/// denied keys only.
#[derive(Debug, Default)]
pub struct Summary {
    requests: u64,
    allowed: u64,
    denied_by_key: HashMap<String, u64>,
}

/// The JSON form of a summary, fields in contract order.
#[derive(Serialize)]
struct JsonSummary<'a> {
    requests: u64,
    allowed: u64,
    denied: u64,
    top_denied: Vec<JsonKey<'a>>,
}

#[derive(Serialize)]
struct JsonKey<'a> {
    key: &'a str,
    denied: u64,
}

impl Summary {
    /// Counts one decided request.
    pub fn record(&mut self, key: &str, allowed: bool) {
        self.requests += 1;
        if allowed {
            self.allowed += 1;
        } else if let Some(n) = self.denied_by_key.get_mut(key) {
            // Looked up first so that a key denied again costs no allocation.
            *n += 1;
        } else {
            self.denied_by_key.insert(key.to_string(), 1);
        }
    }

    /// How many requests were decided.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// How many were denied.
    pub fn denied(&self) -> u64 {
        self.requests - self.allowed
    }

    /// The `n` keys denied most, most first; ties in key order so the output is stable.
    pub fn top_denied(&self, n: usize) -> Vec<(&str, u64)> {
        let order =
            |a: &(&str, u64), b: &(&str, u64)| -> Ordering { b.1.cmp(&a.1).then(a.0.cmp(b.0)) };
        let mut keys: Vec<(&str, u64)> = self
            .denied_by_key
            .iter()
            .map(|(k, &d)| (k.as_str(), d))
            .collect();
        // Selecting first keeps the end of a replay with millions of denied keys cheap.
        if keys.len() > n {
            keys.select_nth_unstable_by(n, order);
            keys.truncate(n);
        }
        keys.sort_unstable_by(order);
        keys
    }

    /// Writes the human-readable summary.
    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        let percent = if self.requests == 0 {
            0.0
        } else {
            self.denied() as f64 * 100.0 / self.requests as f64
        };
        writeln!(w, "requests: {}", self.requests)?;
        writeln!(w, "allowed:  {}", self.allowed)?;
        writeln!(w, "denied:   {} ({percent:.2}%)", self.denied())?;
        let top = self.top_denied(TOP_KEYS);
        if top.is_empty() {
            return writeln!(w, "top denied keys: none");
        }
        writeln!(w, "top denied keys:")?;
        // Keys are quoted so that spaces and control characters stay visible.
        let quoted: Vec<String> = top.iter().map(|(k, _)| format!("{k:?}")).collect();
        let width = quoted.iter().map(|q| q.chars().count()).max().unwrap_or(0);
        for (q, (_, denied)) in quoted.iter().zip(&top) {
            writeln!(w, "  {q:<width$}  {denied}")?;
        }
        Ok(())
    }

    /// Writes the summary as one JSON object on one line.
    pub fn write_json(&self, w: &mut impl Write) -> io::Result<()> {
        let json = JsonSummary {
            requests: self.requests,
            allowed: self.allowed,
            denied: self.denied(),
            top_denied: self
                .top_denied(TOP_KEYS)
                .into_iter()
                .map(|(key, denied)| JsonKey { key, denied })
                .collect(),
        };
        serde_json::to_writer(&mut *w, &json).map_err(io::Error::from)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(records: &[(&str, bool)]) -> Summary {
        let mut s = Summary::default();
        for &(key, allowed) in records {
            s.record(key, allowed);
        }
        s
    }

    #[test]
    fn counts_and_ranks() {
        let s = summary(&[
            ("a", true),
            ("b", false),
            ("c", false),
            ("b", false),
            ("a", false),
        ]);
        assert_eq!((s.requests(), s.allowed, s.denied()), (5, 1, 4));
        assert_eq!(s.top_denied(10), vec![("b", 2), ("a", 1), ("c", 1)]);
        assert_eq!(s.top_denied(2), vec![("b", 2), ("a", 1)]);
        assert!(s.top_denied(0).is_empty());
    }

    #[test]
    fn top_keeps_the_ten_most_denied() {
        let mut s = Summary::default();
        for k in 0..30u64 {
            for _ in 0..k {
                s.record(&format!("k{k:02}"), false);
            }
        }
        let top = s.top_denied(TOP_KEYS);
        let expected: Vec<(String, u64)> =
            (20..30).rev().map(|k| (format!("k{k:02}"), k)).collect();
        let got: Vec<(String, u64)> = top.into_iter().map(|(k, d)| (k.to_string(), d)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn text_and_json() {
        let s = summary(&[
            ("a", true),
            ("user b", false),
            ("a", false),
            ("user b", false),
        ]);
        let mut text = Vec::new();
        s.write_text(&mut text).expect("write");
        let text = String::from_utf8(text).expect("utf-8");
        assert_eq!(
            text,
            "requests: 4\nallowed:  1\ndenied:   3 (75.00%)\ntop denied keys:\n  \"user b\"  2\n  \"a\"       1\n"
        );
        let mut json = Vec::new();
        s.write_json(&mut json).expect("write");
        assert_eq!(
            String::from_utf8(json).expect("utf-8"),
            "{\"requests\":4,\"allowed\":1,\"denied\":3,\"top_denied\":[{\"key\":\"user b\",\"denied\":2},{\"key\":\"a\",\"denied\":1}]}\n"
        );
    }

    #[test]
    fn empty_replay() {
        let mut text = Vec::new();
        Summary::default().write_text(&mut text).expect("write");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains("denied:   0 (0.00%)"), "{text}");
        assert!(text.contains("top denied keys: none"), "{text}");
    }
}
