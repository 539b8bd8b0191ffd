//! The streaming part of a replay: decide each line in simulated time and write its
//! decision, holding one line in memory at a time.

use std::io::{self, BufRead, Read, Write};

use anyhow::Context;
use serde::Serialize;
use tollgate::memory::MemoryStore;
use tollgate::{Decision, FakeClock, Limit};

use super::{LineError, NANOS_PER_MS, Request, Summary, parse_line, quote};

/// A valid line is at most ~1070 bytes; the cap keeps a file without newlines from being
/// read into memory whole, with room for leading zeros and padding.
const MAX_LINE_BYTES: usize = 64 * 1024;

const PROGRESS_EVERY: u64 = 1_000_000;

/// Decides requests one after another under one limit, in simulated time.
pub struct Replayer {
    limit: Limit,
    clock: FakeClock,
    store: MemoryStore<FakeClock>,
    last_t_ms: u64,
    summary: Summary,
}

impl Replayer {
    /// A replayer whose clock stands at the epoch.
    pub fn new(limit: Limit) -> Replayer {
        let clock = FakeClock::at(0);
        // No cap: a replay must decide every key exactly, and idle keys are dropped anyway.
        let store = MemoryStore::builder()
            .clock(clock.clone())
            .max_keys(usize::MAX)
            .build();
        Replayer {
            limit,
            clock,
            store,
            last_t_ms: 0,
            summary: Summary::default(),
        }
    }

    /// Decides `request`, read from line `line_no`, at its time.
    pub fn decide(&mut self, line_no: u64, request: &Request<'_>) -> Result<Decision, LineError> {
        let fail = |message: String| LineError {
            line: line_no,
            message,
        };
        if request.t_ms < self.last_t_ms {
            return Err(fail(format!(
                "t_ms {} goes back in time: the previous request was at {} (t_ms must never decrease)",
                request.t_ms, self.last_t_ms
            )));
        }
        self.last_t_ms = request.t_ms;
        self.clock.set(request.t_ms.saturating_mul(NANOS_PER_MS));
        let decision = self
            .store
            .check(request.key, &self.limit, request.cost)
            .map_err(|e| fail(e.to_string()))?;
        self.summary.record(request.key, decision.allowed);
        Ok(decision)
    }

    /// The tallies so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// One output line, fields in contract order.
#[derive(Serialize)]
struct Row<'a> {
    t_ms: u64,
    key: &'a str,
    cost: u64,
    allowed: bool,
    limit: u64,
    remaining: u64,
    retry_after_ms: u64,
    reset_after_ms: u64,
}

/// How a replay ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every line was replayed.
    Finished(Summary),
    /// The output was closed (a broken pipe) before the end; nothing more to do.
    OutputClosed,
}

/// Replays every line of `input`, writing one JSON decision a line to `out` (flushed at the
/// end). With `progress`, reports the count of lines every million lines on stderr.
pub fn replay<R: BufRead, W: Write>(
    limit: Limit,
    mut input: R,
    out: &mut W,
    progress: bool,
) -> anyhow::Result<Outcome> {
    let mut replayer = Replayer::new(limit);
    let mut line = Vec::with_capacity(256);
    let mut row = Vec::with_capacity(256);
    let mut line_no = 0u64;
    loop {
        line.clear();
        let read = input
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read line {}", line_no + 1))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        let text = line_text(line_no, &line)?;
        if let Some(request) = parse_line(line_no, text)? {
            let decision = replayer.decide(line_no, &request)?;
            row.clear();
            serde_json::to_writer(&mut row, &to_row(&request, &decision))?;
            row.push(b'\n');
            if let Err(e) = out.write_all(&row) {
                return closed_or(e);
            }
        }
        if progress && line_no.is_multiple_of(PROGRESS_EVERY) {
            let s = replayer.summary();
            let _ = writeln!(
                io::stderr().lock(),
                "replay: {line_no} lines, {} requests, {} denied",
                s.requests(),
                s.denied()
            );
        }
    }
    if let Err(e) = out.flush() {
        return closed_or(e);
    }
    Ok(Outcome::Finished(replayer.summary))
}

/// A broken pipe ends the replay quietly, the way `cat` does under `head`.
fn closed_or(e: io::Error) -> anyhow::Result<Outcome> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(Outcome::OutputClosed)
    } else {
        Err(anyhow::Error::new(e).context("cannot write the output"))
    }
}

/// The line as text, if it is short enough and UTF-8.
fn line_text(line_no: u64, line: &[u8]) -> Result<&str, LineError> {
    let fail = |message: String| LineError {
        line: line_no,
        message,
    };
    if line.len() > MAX_LINE_BYTES && line.last() != Some(&b'\n') {
        let start = quote(&String::from_utf8_lossy(line));
        return Err(fail(format!(
            "the line is longer than {MAX_LINE_BYTES} bytes: {start}"
        )));
    }
    std::str::from_utf8(line).map_err(|e| {
        // Escaped bytes show exactly what is wrong, which a lossy conversion would hide.
        const SHOWN: usize = 60;
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let more = if content.len() > SHOWN { "…" } else { "" };
        let shown = content[..content.len().min(SHOWN)].escape_ascii();
        fail(format!(
            "the line is not valid UTF-8 (at byte {}): \"{shown}\"{more}",
            e.valid_up_to() + 1
        ))
    })
}

fn to_row<'a>(request: &Request<'a>, d: &Decision) -> Row<'a> {
    Row {
        t_ms: request.t_ms,
        key: request.key,
        cost: request.cost,
        allowed: d.allowed,
        limit: d.limit,
        remaining: d.remaining,
        retry_after_ms: d.retry_after_ms,
        reset_after_ms: d.reset_after_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: &str) -> Limit {
        Limit::gcra(rate.parse().expect("rate"))
    }

    fn run(input: &str) -> (anyhow::Result<Outcome>, String) {
        let mut out = Vec::new();
        let outcome = replay(limit("2/s"), input.as_bytes(), &mut out, false);
        (outcome, String::from_utf8(out).expect("utf-8"))
    }

    /// A writer whose reader has gone after `room` bytes.
    struct Closing {
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for Closing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from(self.kind));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn decides_in_order_and_tallies() {
        let (outcome, out) = run("0,a\n0,a\n# note\n\n0,a\n0,b\n");
        assert_eq!(out.lines().count(), 4);
        assert!(
            out.lines()
                .nth(2)
                .is_some_and(|l| l.contains("\"allowed\":false")),
            "{out}"
        );
        let Ok(Outcome::Finished(summary)) = outcome else {
            panic!("finished: {outcome:?}");
        };
        assert_eq!((summary.requests(), summary.denied()), (4, 1));
        assert_eq!(summary.top_denied(10), vec![("a", 1)]);
    }

    #[test]
    fn time_going_back_stops_at_that_line() {
        let (outcome, out) = run("500,a\n500,b\n499,a\n600,a\n");
        assert_eq!(
            out.lines().count(),
            2,
            "the lines before the error are written"
        );
        let err = outcome.expect_err("time went back").to_string();
        assert!(
            err.starts_with("line 3: t_ms 499 goes back in time"),
            "{err}"
        );
        assert!(err.contains("500"), "{err}");
    }

    #[test]
    fn a_cost_over_capacity_is_an_error() {
        let (outcome, _) = run("0,a,2\n0,b,3\n");
        let err = outcome.expect_err("too costly");
        let line = err.downcast_ref::<LineError>().expect("a line error");
        assert_eq!(line.line, 2);
        assert!(
            line.message
                .contains("cost 3 exceeds the limit's capacity 2"),
            "{err}"
        );
    }

    #[test]
    fn bad_bytes_and_endless_lines_are_line_errors() {
        let mut out = Vec::new();
        let err =
            replay(limit("2/s"), &b"0,a\n1,\xff\n"[..], &mut out, false).expect_err("not UTF-8");
        assert!(
            err.to_string()
                .starts_with("line 2: the line is not valid UTF-8 (at byte 3): \"1,\\xff\""),
            "{err}"
        );

        let endless = format!("0,a\n1,{}", "k".repeat(MAX_LINE_BYTES * 3));
        let err = replay(limit("2/s"), endless.as_bytes(), &mut out, false).expect_err("too long");
        assert!(
            err.to_string()
                .starts_with("line 2: the line is longer than 65536 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_pipe_ends_quietly() {
        let input = "0,a\n".repeat(1000);
        let mut out = Closing {
            room: 300,
            kind: io::ErrorKind::BrokenPipe,
        };
        let outcome = replay(limit("2/s"), input.as_bytes(), &mut out, false);
        assert!(matches!(outcome, Ok(Outcome::OutputClosed)), "{outcome:?}");
    }

    #[test]
    fn other_write_errors_are_reported() {
        let mut out = Closing {
            room: 0,
            kind: io::ErrorKind::StorageFull,
        };
        let err = replay(limit("2/s"), &b"0,a\n"[..], &mut out, false).expect_err("disk full");
        assert!(err.to_string().contains("cannot write the output"), "{err}");
    }
}
