//! `tollgate replay`: decides recorded traffic offline, in simulated time, with the same
//! in-memory store a server would use, so a policy can be tried before it is deployed.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tollgate::{Algorithm, Limit, Rate, validate_key};

mod engine;
mod summary;

use engine::{Outcome, replay};
use summary::Summary;

const AFTER_LONG_HELP: &str = "\
INPUT (FILE, or stdin when FILE is `-` or omitted):
  One request a line, CSV `t_ms,key[,cost]`. t_ms is a whole number of milliseconds since
  the Unix epoch (fixed windows align to it), at most 9223372036854 (the year 2262), and must
  never decrease; cost is a whole number, 1 when omitted (0 peeks without consuming). A line starting with `#` is a comment; blank
  lines and CRLF line ends are accepted. Keys are 1 to 1024 bytes and cannot contain `,`.

OUTPUT (stdout): one JSON object a line, in input order:
  {\"t_ms\":…,\"key\":\"…\",\"cost\":…,\"allowed\":…,\"limit\":…,\"remaining\":…,\"retry_after_ms\":…,\"reset_after_ms\":…}

SUMMARY (stderr): requests, allowed, denied (with %) and the 10 keys denied most. With
  --json-summary it is one JSON object instead:
  {\"requests\":N,\"allowed\":N,\"denied\":N,\"top_denied\":[{\"key\":\"…\",\"denied\":N},…]}
  When stderr is a terminal, progress is shown every 1,000,000 lines.

EXIT STATUS:
  0 when every line was replayed, or when stdout was closed early (e.g. by `head`; no
  summary is printed then); 2 on bad flags, an unreadable FILE or a malformed line, reported
  as `error: line N: …`. Lines printed before the error stay printed.

EXAMPLE:
  printf '0,alice\\n0,alice\\n0,alice\\n500,alice\\n' | tollgate replay --rate 2/s";

/// Flags of `tollgate replay`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_LONG_HELP)]
pub struct Args {
    /// The rate to enforce, COUNT/PERIOD: for example 100/60s, 20/min, 10/500ms.
    #[arg(long, value_name = "RATE")]
    pub rate: Rate,

    /// How the rate is enforced: gcra, strict, sliding-window or fixed-window.
    #[arg(long, value_name = "A", default_value = "gcra")]
    pub algorithm: Algorithm,

    /// For gcra, how many may pass at once (default: COUNT). strict means 1; the window
    /// algorithms take none.
    #[arg(long, value_name = "B")]
    pub burst: Option<u64>,

    /// Print the summary on stderr as one JSON object instead of text, so that
    /// `2> summary.json` captures pure JSON.
    #[arg(long)]
    pub json_summary: bool,

    /// The recorded traffic; `-` or nothing reads stdin.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
}

/// One recorded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// When it arrived, in milliseconds since the Unix epoch.
    pub t_ms: u64,
    /// The key it is limited by.
    pub key: &'a str,
    /// How much it costs.
    pub cost: u64,
}

/// A line that cannot be replayed. Its message quotes the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The line's number, from 1.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LineError {}

/// Nanoseconds in a millisecond: the simulated clock counts nanoseconds.
pub const NANOS_PER_MS: u64 = 1_000_000;

/// The largest t_ms: 2^63 ns, in the year 2262. The core computes `now + BURST × T` (or
/// `now + PERIOD`) in u64 nanoseconds and saturates beyond, which would admit too much near
/// the end of u64 time; a tolerance is under 2^62 ns, so below 2^63 it always fits.
const MAX_T_MS: u64 = (1 << 63) / NANOS_PER_MS;

/// Parses one input line (with or without its line end). `Ok(None)` for a blank line or a
/// comment.
pub fn parse_line(line_no: u64, text: &str) -> Result<Option<Request<'_>>, LineError> {
    let fail = |message: String| LineError {
        line: line_no,
        message,
    };
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    // Spreadsheets often save CSV with a byte order mark.
    let text = match line_no {
        1 => text.strip_prefix('\u{feff}').unwrap_or(text),
        _ => text,
    };
    if text.trim().is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut fields = text.split(',');
    let (Some(t_text), Some(key), cost_text, None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        let n = text.split(',').count();
        let s = if n == 1 { "" } else { "s" };
        return Err(fail(format!(
            "expected `t_ms,key[,cost]` but found {n} field{s} in {}",
            quote(text)
        )));
    };
    let t_ms = parse_number("t_ms", t_text, MAX_T_MS).map_err(fail)?;
    validate_key(key).map_err(|e| fail(format!("{e}, in {}", quote(text))))?;
    let cost = match cost_text {
        None => 1,
        Some(c) => parse_number("cost", c, u64::MAX).map_err(fail)?,
    };
    Ok(Some(Request { t_ms, key, cost }))
}

/// Parses a whole number of ASCII digits (no sign, no spaces) up to `max`.
fn parse_number(name: &str, text: &str, max: u64) -> Result<u64, String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(text) {
        let why = match text.strip_prefix('-') {
            Some(rest) if digits(rest) => "is negative",
            _ => "is not a whole number",
        };
        return Err(format!("{name} {} {why}", quote(text)));
    }
    match text.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "{name} {} is too large (at most {max})",
            quote(text)
        )),
    }
}

/// Quotes text for an error message, cut short so a huge line cannot flood the terminal.
fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Runs `tollgate replay`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let limit = Limit::new(args.rate, args.algorithm, args.burst)?;
    let input: Box<dyn BufRead> = match args.file.as_deref() {
        None => Box::new(io::stdin().lock()),
        Some(path) if path == Path::new("-") => Box::new(io::stdin().lock()),
        Some(path) => {
            let file = File::open(path).with_context(|| format!("cannot open {path:?}"))?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        }
    };
    let progress = io::stderr().is_terminal();
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let summary = match replay(limit, input, &mut out, progress) {
        Ok(Outcome::Finished(summary)) => summary,
        Ok(Outcome::OutputClosed) => return Ok(()),
        Err(e) => {
            // The decisions before the bad line go out before the error that stops them.
            let _ = out.flush();
            return Err(e);
        }
    };
    let mut err = io::stderr().lock();
    // A closed stderr leaves nobody to report to; stdout is complete, so still exit 0.
    let _ = if args.json_summary {
        summary.write_json(&mut err)
    } else {
        summary.write_text(&mut err)
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tollgate::MAX_KEY_BYTES;

    use super::*;

    fn ok(line: &str) -> Option<Request<'_>> {
        parse_line(7, line).expect("a good line")
    }

    fn bad(line: &str) -> String {
        let err = parse_line(7, line).expect_err("a bad line");
        assert_eq!(err.line, 7);
        err.to_string()
    }

    #[test]
    fn good_lines() {
        let req = |t_ms, key, cost| Some(Request { t_ms, key, cost });
        assert_eq!(ok("0,a"), req(0, "a", 1));
        assert_eq!(
            ok("1700000000000,user:1,5"),
            req(1_700_000_000_000, "user:1", 5)
        );
        assert_eq!(ok("12,a b,0"), req(12, "a b", 0));
        assert_eq!(ok("12,k\r\n"), req(12, "k", 1));
        assert_eq!(ok("12,k,3\r"), req(12, "k", 3));
        assert_eq!(ok("007,k,010"), req(7, "k", 10));
        assert_eq!(
            ok(&format!("{MAX_T_MS},k,{}", u64::MAX)),
            req(MAX_T_MS, "k", u64::MAX)
        );
        let long_key = "k".repeat(MAX_KEY_BYTES);
        assert_eq!(ok(&format!("1,{long_key}")), req(1, long_key.as_str(), 1));
        assert_eq!(parse_line(1, "\u{feff}3,k"), Ok(req(3, "k", 1)));
    }

    #[test]
    fn blank_lines_and_comments_are_skipped() {
        for line in [
            "",
            "\n",
            "\r\n",
            "   ",
            "\t\r",
            "#",
            "# t_ms,key,cost",
            "#1,a,2\r\n",
        ] {
            assert_eq!(ok(line), None, "{line:?}");
        }
    }

    #[test]
    fn bad_lines_name_the_line_and_quote_the_text() {
        let cases = [
            ("5", "found 1 field in \"5\""),
            ("1,a,2,3", "found 4 fields in \"1,a,2,3\""),
            ("1.5,a", "t_ms \"1.5\" is not a whole number"),
            (" 1,a", "t_ms \" 1\" is not a whole number"),
            (",a", "t_ms \"\" is not a whole number"),
            ("-5,a", "t_ms \"-5\" is negative"),
            (
                "99999999999999999999,a",
                "t_ms \"99999999999999999999\" is too large",
            ),
            (
                "9223372036855,a",
                "t_ms \"9223372036855\" is too large (at most 9223372036854)",
            ),
            ("1,a,x", "cost \"x\" is not a whole number"),
            ("1,a,", "cost \"\" is not a whole number"),
            ("1,a,-1", "cost \"-1\" is negative"),
            ("1,a,+1", "cost \"+1\" is not a whole number"),
            (
                "1,a,18446744073709551616",
                "cost \"18446744073709551616\" is too large",
            ),
            ("1,,2", "the key is empty, in \"1,,2\""),
            (" # no,comment", "t_ms \" # no\" is not a whole number"),
        ];
        for (line, expected) in cases {
            let message = bad(line);
            assert!(message.starts_with("line 7: "), "{line:?}: {message}");
            assert!(message.contains(expected), "{line:?}: {message}");
        }
    }

    #[test]
    fn an_over_long_key_is_reported_short() {
        let line = format!("1,{}", "k".repeat(MAX_KEY_BYTES + 1));
        let message = bad(&line);
        assert!(message.contains("1025 bytes long"), "{message}");
        assert!(
            message.contains(&format!("\"1,{}\"…", "k".repeat(58))),
            "{message}"
        );
        assert!(message.len() < 200, "{message}");
    }

    /// Lines made of the characters that matter to the grammar, plus a few that do not.
    fn grammar_soup() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::char::range('0', '9'),
                2 => Just(','),
                1 => Just('-'),
                1 => Just('#'),
                1 => Just('\r'),
                1 => Just(' '),
                1 => Just('k'),
                1 => Just('é'),
            ],
            0..48,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn check_total(line_no: u64, text: &str) -> Result<(), TestCaseError> {
        match parse_line(line_no, text) {
            Ok(Some(req)) => {
                prop_assert!(!req.key.is_empty() && req.key.len() <= MAX_KEY_BYTES);
                prop_assert!(req.t_ms <= MAX_T_MS);
                prop_assert!(text.contains(req.key));
            }
            Ok(None) => {}
            Err(e) => {
                prop_assert_eq!(e.line, line_no);
                let prefix = format!("line {line_no}: ");
                prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
                prop_assert!(!e.message.is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(line_no in 1u64.., text in any::<String>()) {
            check_total(line_no, &text)?;
        }

        #[test]
        fn never_panics_on_digits_and_commas(line_no in 1u64.., text in grammar_soup()) {
            check_total(line_no, &text)?;
        }

        #[test]
        fn well_formed_lines_round_trip(
            t_ms in 0..=MAX_T_MS,
            key in "[a-z:_0-9]{1,40}",
            cost in proptest::option::of(any::<u64>()),
            crlf in any::<bool>(),
        ) {
            let mut line = format!("{t_ms},{key}");
            if let Some(c) = cost {
                line.push_str(&format!(",{c}"));
            }
            line.push_str(if crlf { "\r\n" } else { "\n" });
            let expected = Request { t_ms, key: key.as_str(), cost: cost.unwrap_or(1) };
            prop_assert_eq!(parse_line(3, &line), Ok(Some(expected)));
        }
    }
}
