//! Reading `GET /v1/stats`, and saying precisely what went wrong when it cannot be read.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use tollgate_server::stats::StatsReport;

/// The most of a bad answer quoted in an error.
const QUOTE_CHARS: usize = 120;

/// A client for one server's stats.
#[derive(Debug, Clone)]
pub struct StatsClient {
    http: reqwest::Client,
    base: String,
    url: String,
    token: Option<String>,
    timeout: Duration,
}

/// A report as read, with the text it was read from (for `--once --json`).
#[derive(Debug)]
pub struct Fetched {
    /// The report.
    pub report: StatsReport,
    /// The answer's body as it came.
    pub raw: String,
}

/// Why the stats could not be read.
#[derive(Debug)]
pub enum FetchError {
    /// No answer: refused, timed out, broke off.
    Unreachable {
        /// The server's base URL.
        base: String,
        /// What the HTTP stack said, causes included.
        cause: String,
    },
    /// An answer other than 2xx.
    Status {
        /// The server's base URL.
        base: String,
        /// The status.
        status: reqwest::StatusCode,
        /// The start of the body.
        body: String,
    },
    /// A 2xx answer that is not JSON.
    NotJson {
        /// The server's base URL.
        base: String,
        /// The parser's complaint.
        cause: String,
        /// The start of the body.
        body: String,
    },
    /// JSON, but not a stats report.
    WrongShape {
        /// The server's base URL.
        base: String,
        /// The parser's complaint (which field, where).
        cause: String,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Unreachable { base, cause } => {
                write!(f, "cannot reach the tollgate server at {base}: {cause}")
            }
            FetchError::Status { base, status, body } => {
                write!(f, "the server at {base} answered {status} to GET /v1/stats")?;
                match *status {
                    reqwest::StatusCode::NOT_FOUND => {
                        write!(f, " (a tollgate server without /v1/stats, or not tollgate)")?;
                    }
                    reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
                        write!(f, " (give the admin token with --token or TOLLGATE_TOKEN)")?;
                    }
                    _ => {}
                }
                match tollgate_error(body) {
                    Some((code, message)) => write!(f, ": {code}: {message}"),
                    None if body.is_empty() => Ok(()),
                    None => write!(f, ": {body}"),
                }
            }
            FetchError::NotJson { base, cause, body } => write!(
                f,
                "the server at {base} answered something that is not JSON ({cause}): {body}"
            ),
            FetchError::WrongShape { base, cause } => write!(
                f,
                "the server at {base} answered JSON that is not a tollgate stats report: {cause}"
            ),
        }
    }
}

impl std::error::Error for FetchError {}

impl StatsClient {
    /// A client for the server at `server` (a base URL like `http://127.0.0.1:8080`).
    pub fn new(
        server: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> anyhow::Result<StatsClient> {
        let base = server.trim_end_matches('/').to_string();
        let url = format!("{base}/v1/stats");
        let parsed = reqwest::Url::parse(&url)
            .with_context(|| format!("--server {server:?} is not a URL like http://host:8080"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https"),
            "--server {server:?} is not an http:// or https:// URL"
        );
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(StatsClient {
            http,
            base,
            url,
            token,
            timeout,
        })
    }

    /// The server's base URL, as shown to people.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Reads one report.
    pub async fn fetch(&self) -> Result<Fetched, FetchError> {
        let mut request = self.http.get(&self.url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| FetchError::Unreachable {
            base: self.base.clone(),
            cause: if e.is_timeout() {
                format!("no answer within {} ms", self.timeout.as_millis())
            } else if e.is_connect() {
                format!("cannot connect: {}", root_cause(&e))
            } else {
                causes(&e)
            },
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let raw = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(FetchError::Status {
                base: self.base.clone(),
                status,
                body: quote(&raw),
            });
        }
        parse(&self.base, raw)
    }
}

/// Turns an answer's body into a report, or says which of "not JSON" and "not a report" it is.
pub fn parse(base: &str, raw: String) -> Result<Fetched, FetchError> {
    let value: serde_json::Value = serde_json::from_str(&raw).map_err(|e| FetchError::NotJson {
        base: base.to_string(),
        cause: e.to_string(),
        body: quote(&raw),
    })?;
    let report = serde_json::from_value(value).map_err(|e| FetchError::WrongShape {
        base: base.to_string(),
        cause: e.to_string(),
    })?;
    Ok(Fetched { report, raw })
}

/// An error and its causes on one line: reqwest's own message is only "error sending
/// request"; the cause ("Connection refused") is what a person needs.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The code and message of a tollgate error body (`{"error":{"code":…,"message":…}}`).
fn tollgate_error(body: &str) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    Some((
        error.get("code")?.as_str()?.to_string(),
        error.get("message")?.as_str()?.to_string(),
    ))
}

/// The innermost cause ("Connection refused (os error 111)"): reqwest's chain around it
/// repeats the URL and names its own layers.
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// The start of a body, on one line, for an error message.
fn quote(body: &str) -> String {
    let line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    if line.chars().count() > QUOTE_CHARS {
        let cut: String = line.chars().take(QUOTE_CHARS).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::fixture;

    #[test]
    fn a_report_parses_back() {
        let report = fixture::busy();
        let raw = serde_json::to_string(&report).expect("serializes");
        let fetched = parse("http://x", raw.clone()).expect("a report");
        // Not `==` on the whole: serde_json may read a float back one ULP off.
        let names = |r: &StatsReport| -> Vec<String> {
            r.policies.iter().map(|p| p.name.clone()).collect()
        };
        assert_eq!(names(&fetched.report), ["login", "api", "inline"]);
        assert_eq!(fetched.report.queues, report.queues);
        assert_eq!(fetched.report.history.len(), 120);
        assert_eq!(fetched.raw, raw);
    }

    #[test]
    fn html_is_not_json() {
        let err =
            parse("http://x:1", "<html><body>hello</body></html>".into()).expect_err("not json");
        assert!(matches!(err, FetchError::NotJson { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("http://x:1"), "{text}");
        assert!(text.contains("not JSON"), "{text}");
        assert!(text.contains("<html><body>hello"), "{text}");
    }

    #[test]
    fn other_json_is_the_wrong_shape() {
        let err = parse("http://x", r#"{"status":"ok"}"#.into()).expect_err("wrong shape");
        assert!(matches!(err, FetchError::WrongShape { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("not a tollgate stats report"), "{text}");
        assert!(text.contains("missing field"), "{text}");
    }

    #[test]
    fn tollgate_errors_are_quoted_by_code_and_message() {
        let err = FetchError::Status {
            base: "http://x".into(),
            status: reqwest::StatusCode::UNAUTHORIZED,
            body: r#"{"error":{"code":"unauthorized","message":"the bearer token is wrong"}}"#
                .into(),
        };
        assert_eq!(
            err.to_string(),
            "the server at http://x answered 401 Unauthorized to GET /v1/stats (give the admin \
             token with --token or TOLLGATE_TOKEN): unauthorized: the bearer token is wrong"
        );
    }

    #[test]
    fn long_bodies_are_cut_to_one_line() {
        let body = format!("line one\nline two {}", "x".repeat(500));
        let quoted = quote(&body);
        assert!(!quoted.contains('\n'));
        assert_eq!(quoted.chars().count(), QUOTE_CHARS + 1);
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn a_bad_server_url_is_refused() {
        let err =
            StatsClient::new("not a url", None, Duration::from_secs(1)).expect_err("not a url");
        assert!(err.to_string().contains("\"not a url\""), "{err}");
        assert!(StatsClient::new("ftp://host", None, Duration::from_secs(1)).is_err());
        let client = StatsClient::new("http://127.0.0.1:8080/", None, Duration::from_secs(1))
            .expect("a url");
        assert_eq!(client.base(), "http://127.0.0.1:8080");
    }
}
