//! Reporting to a running `tollgate serve`, so that its monitor, web dashboard and alert rules
//! (`kind: usage`) show this controller: every interval, its usage, tier and counters go to
//! `POST /v1/controllers/{name}`.

use std::sync::Weak;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::UnifiedRateController;
use crate::controller::Inner;

/// The shortest reporting interval: the server samples once a second.
pub const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(500);

/// Why reporting could not start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportError {
    /// The server's URL is not an http(s) URL.
    #[error("server URL {url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// The name is empty, too long or has characters other than letters, digits, `_-.:`.
    #[error("controller name {name:?}: use 1 to 64 letters, digits, '_', '-', '.' or ':'")]
    BadName {
        /// The name given.
        name: String,
    },
    /// The interval is under [`MIN_REPORT_INTERVAL`].
    #[error("report interval {interval:?} is under the minimum of {MIN_REPORT_INTERVAL:?}")]
    BadInterval {
        /// The interval given.
        interval: Duration,
    },
    /// Not called inside a Tokio runtime.
    #[error("report_to needs a Tokio runtime")]
    NoRuntime,
}

/// Where and how to report.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    interval: Duration,
    token: Option<String>,
}

impl UnifiedRateController {
    /// Reports this controller to the `tollgate serve` at `server` (like
    /// `http://127.0.0.1:8080`) under `name`, every `interval`, with the server's admin
    /// token when it has one. A report that fails is logged and the next one tried; nothing
    /// waits for the server, so a server that is down never slows a permit. Calling it again
    /// replaces the reporter; it stops when the controller is dropped.
    pub fn report_to(
        &self,
        server: &str,
        name: &str,
        interval: Duration,
        token: Option<&str>,
    ) -> Result<(), ReportError> {
        let base = server.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://"))
            || reqwest::Url::parse(base).is_err()
        {
            return Err(ReportError::BadUrl {
                url: server.to_string(),
            });
        }
        let name_ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        if !name_ok {
            return Err(ReportError::BadName {
                name: name.to_string(),
            });
        }
        if interval < MIN_REPORT_INTERVAL {
            return Err(ReportError::BadInterval { interval });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ReportError::NoRuntime)?;
        let target = Target {
            url: format!("{base}/v1/controllers/{name}"),
            interval,
            token: token.map(str::to_string),
        };
        let task = runtime.spawn(report(self.weak_inner(), target));
        if let Some(old) = self.reporter.lock().replace(task) {
            old.abort();
        }
        Ok(())
    }
}

fn waiting(depths: &crate::PerPriority<usize>) -> u64 {
    [depths.critical, depths.high, depths.medium, depths.low]
        .into_iter()
        .map(|n| n as u64)
        .sum()
}

async fn report(inner: Weak<Inner>, target: Target) {
    let client = match reqwest::Client::builder()
        .timeout(target.interval.min(Duration::from_secs(5)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot report the controller: no HTTP client: {e}");
            return;
        }
    };
    let mut ticker = tokio::time::interval(target.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let Some(controller) = inner.upgrade() else {
            return;
        };
        let stats = controller.stats().await;
        drop(controller);
        let body = serde_json::json!({
            "capacity": stats.capacity,
            "window_ms": u64::try_from(stats.window.as_millis()).unwrap_or(u64::MAX),
            "usage": stats.usage,
            "usage_percent": stats.usage_percent,
            "tier": stats.throttle_state.name().to_ascii_lowercase(),
            "waiting": waiting(&stats.queue_depths),
            "granted": stats.granted,
            "sla_violations": stats.sla_violations,
            "interval_ms": u64::try_from(target.interval.as_millis()).unwrap_or(u64::MAX),
        });
        let mut request = client.post(&target.url).json(&body);
        if let Some(token) = &target.token {
            request = request.bearer_auth(token);
        }
        let outcome = match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the server answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) if failing => {
                tracing::info!(url = %target.url, "controller reports reach the server again");
                failing = false;
            }
            Ok(()) => {}
            // Once per outage at WARN; a down server would otherwise fill the log.
            Err(e) if !failing => {
                tracing::warn!(url = %target.url, "cannot report the controller: {e}");
                failing = true;
            }
            Err(e) => tracing::debug!(url = %target.url, "cannot report the controller: {e}"),
        }
    }
}
