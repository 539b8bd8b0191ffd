//! What a queue is: its name, its rate, and how it treats tasks. Validated once, here, so
//! every store and every front end (CLI, HTTP, Rust) refuses the same bad input the same way.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tollgate_core::{Algorithm, Limit, Rate, Unit};

use crate::error::QueueError;

/// The longest queue name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Attempts a task gets by default before it is dead-lettered.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// How long a worker holds a task before the task is given to another worker, by default.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a queue may stay idle and empty before it is removed, by default.
pub const DEFAULT_IDLE_EXPIRY: Duration = Duration::from_secs(3600);
/// The first retry's delay, before jitter; it doubles with each attempt.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A queue to create: `QueueSpec::new(rate)` and the builder methods, then
/// [`validate`](QueueSpec::validate) (the stores call it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// The name; `None` makes `batch_<uuid4>`.
    #[serde(default)]
    pub name: Option<String>,
    /// How many attempts may start per period, across every worker.
    #[serde(with = "rate_text")]
    pub rate: Rate,
    /// Starts allowed at once; `None` is strict spacing (CONTRACT `strict`, no bursts).
    #[serde(default)]
    pub burst: Option<u64>,
    /// Attempts before a task is dead-lettered (≥ 1).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How long a lease lasts without a heartbeat, in ms.
    #[serde(default = "default_visibility_ms")]
    pub visibility_timeout_ms: u64,
    /// How long the queue may stay idle and empty before it is removed, in ms (0: never).
    #[serde(default = "default_idle_ms")]
    pub idle_expiry_ms: u64,
    /// The first retry's delay in ms (doubling per attempt, with jitter).
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// The longest retry delay in ms.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// When the backlog should be done, in ms since the Unix epoch (for `show` and autoscaling).
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_visibility_ms() -> u64 {
    millis(DEFAULT_VISIBILITY_TIMEOUT)
}
fn default_idle_ms() -> u64 {
    millis(DEFAULT_IDLE_EXPIRY)
}
fn default_backoff_base_ms() -> u64 {
    millis(DEFAULT_BACKOFF_BASE)
}
fn default_backoff_max_ms() -> u64 {
    millis(DEFAULT_BACKOFF_MAX)
}

/// A duration in whole milliseconds, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl QueueSpec {
    /// A strict queue at `rate` with the defaults.
    pub fn new(rate: Rate) -> QueueSpec {
        QueueSpec {
            name: None,
            rate,
            burst: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            visibility_timeout_ms: default_visibility_ms(),
            idle_expiry_ms: default_idle_ms(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            deadline_ms: None,
        }
    }

    /// Names the queue.
    pub fn name(mut self, name: impl Into<String>) -> QueueSpec {
        self.name = Some(name.into());
        self
    }

    /// Allows `burst` starts at once.
    pub fn burst(mut self, burst: u64) -> QueueSpec {
        self.burst = Some(burst);
        self
    }

    /// Sets the attempts before dead-lettering.
    pub fn max_attempts(mut self, attempts: u32) -> QueueSpec {
        self.max_attempts = attempts;
        self
    }

    /// Sets the lease length.
    pub fn visibility_timeout(mut self, timeout: Duration) -> QueueSpec {
        self.visibility_timeout_ms = millis(timeout);
        self
    }

    /// Sets the retry backoff: the first delay and the longest.
    pub fn backoff(mut self, base: Duration, max: Duration) -> QueueSpec {
        self.backoff_base_ms = millis(base);
        self.backoff_max_ms = millis(max);
        self
    }

    /// Sets how long the queue may stay idle and empty (zero: forever).
    pub fn idle_expiry(mut self, expiry: Duration) -> QueueSpec {
        self.idle_expiry_ms = millis(expiry);
        self
    }

    /// The limit every attempt's start is checked against.
    pub fn limit(&self) -> Result<Limit, QueueError> {
        let (algorithm, burst) = match self.burst {
            None => (Algorithm::Strict, None),
            Some(b) => (Algorithm::Gcra, Some(b)),
        };
        Ok(Limit::new(self.rate, algorithm, burst)?)
    }

    /// Checks every field, and names the queue if it has no name yet.
    pub fn validate(mut self) -> Result<QueueSpec, QueueError> {
        let name = match self.name.take() {
            Some(name) => {
                validate_name(&name)?;
                name
            }
            None => format!("batch_{}", uuid::Uuid::new_v4()),
        };
        self.name = Some(name);
        self.limit()?;
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts", "must be at least 1"));
        }
        if self.visibility_timeout_ms < 10 {
            return Err(invalid(
                "visibility_timeout",
                "must be at least 10ms: a worker needs time to heartbeat",
            ));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(invalid(
                "backoff_max",
                "must be at least the backoff base (the first retry's delay)",
            ));
        }
        Ok(self)
    }

    /// The validated name (`validate` sets it).
    pub fn queue_name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

fn invalid(field: &'static str, reason: &str) -> QueueError {
    QueueError::InvalidSpec {
        field,
        reason: reason.to_string(),
    }
}

/// A queue name: 1 to 128 bytes of `A-Z a-z 0-9 _ - . :` (no braces: the Redis store puts
/// the name in a hash tag, so one queue's keys share a Cluster slot).
pub fn validate_name(name: &str) -> Result<(), QueueError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "`.` and `..` cannot be used in a URL path"
    } else if name.len() > MAX_NAME_BYTES {
        "it is longer than 128 bytes"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        "only letters, digits and _ - . : are allowed"
    } else {
        return Ok(());
    };
    Err(QueueError::InvalidName {
        name: name.chars().take(160).collect(),
        reason,
    })
}

/// Parses a duration written like a rate's period: `250ms`, `30s`, `2min`, `1h`, `1d`; `0s`
/// is zero. The error quotes the input.
pub fn parse_duration(text: &str) -> Result<Duration, QueueError> {
    let bad = || QueueError::InvalidDuration {
        input: text.to_string(),
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit = Unit::from_symbol(unit.trim()).ok_or_else(bad)?;
    let ms = n.checked_mul(unit.millis()).ok_or_else(bad)?;
    Ok(Duration::from_millis(ms))
}

/// Renders a duration in the grammar of [`parse_duration`], in its largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = millis(d);
    for (unit, len) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms >= len && ms.is_multiple_of(len) {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

/// Rates travel as their text (`5/60s`) in JSON.
pub(crate) mod rate_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use tollgate_core::Rate;

    pub fn serialize<S: Serializer>(rate: &Rate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(rate)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_periods() {
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("3min").ok(), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("3m").ok(), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("0s").ok(), Some(Duration::ZERO));
        for bad in ["", "s", "-1s", "5", "5x", "1.5s", "99999999999999999999d"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(format_duration(Duration::from_secs(180)), "3min");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn names_are_checked_and_generated() {
        let spec = QueueSpec::new("5/60s".parse().expect("rate"))
            .validate()
            .expect("valid");
        let name = spec.queue_name();
        assert!(name.starts_with("batch_") && name.len() == 42, "{name}");
        for bad in ["", ".", "..", "a{b}", "has space", &"x".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        validate_name("orders.eu-1:v2").expect("valid name");
    }

    #[test]
    fn bad_specs_name_the_field() {
        let rate: Rate = "5/1s".parse().expect("rate");
        let err = QueueSpec::new(rate).max_attempts(0).validate();
        assert!(matches!(
            err,
            Err(QueueError::InvalidSpec {
                field: "max_attempts",
                ..
            })
        ));
        let err = QueueSpec::new(rate)
            .burst(0)
            .validate()
            .expect_err("burst 0");
        assert!(err.to_string().contains("burst"), "{err}");
        let err = QueueSpec::new(rate)
            .backoff(Duration::from_secs(10), Duration::from_secs(1))
            .validate();
        assert!(matches!(
            err,
            Err(QueueError::InvalidSpec {
                field: "backoff_max",
                ..
            })
        ));
    }
}
