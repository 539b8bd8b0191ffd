//! What the server's integration tests share: a real server on a free port.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use tollgate_server::{Config, ConfigSource, Overrides, Server};

/// A server running in this process until dropped.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    _stop: oneshot::Sender<()>,
}

impl Running {
    /// Serves `yaml` with `store` (`None`: the embedded store) on a free port.
    pub async fn start(yaml: &str, store: Option<String>) -> Running {
        let overrides = Overrides {
            http: Some("127.0.0.1:0".parse().expect("address")),
            grpc: None,
            store,
        };
        let config = overrides.apply(Config::parse(yaml, "test").expect("valid test config"));
        let server = Server::bind(config, ConfigSource::default())
            .await
            .expect("server binds");
        let base = format!("http://{}", server.bound().http);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running { base, _stop: stop }
    }

    /// A queue client of this server.
    pub fn client(&self) -> tollgate_queue::HttpQueues {
        tollgate_queue::HttpQueues::new(&self.base).expect("valid base URL")
    }

    /// A raw request with a JSON body text; answers the status and the JSON body.
    pub async fn raw(&self, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, json)
    }

    /// A request with an optional JSON body and bearer token; answers the status and body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        (status, resp.text().await.expect("body"))
    }

    /// `call` whose answer must be JSON.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (status, text) = self.call(method, path, body, None).await;
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, json)
    }
}

/// The Chromium the dashboard tests run: `$CHROMIUM`, else `chromium` on the PATH (Debian's
/// package, which scripts/test.sh installs).
pub fn chromium() -> std::path::PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| "chromium".into(), std::path::PathBuf::from)
}

/// Starts `command` (made from [`chromium`]); a missing Chromium fails the test
/// with how to install it.
pub fn spawn_chromium(command: &mut std::process::Command) -> std::process::Child {
    command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {}: {e}. The dashboard tests need headless Chromium: install \
             Debian's `chromium` package (scripts/test.sh does) or set CHROMIUM=/path",
            chromium().display()
        )
    })
}
