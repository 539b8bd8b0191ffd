//! The web dashboard on a server whose config sets `admin_token`, driven as a user would in
//! headless Chromium (over the DevTools protocol): the page asks for the token, a wrong one
//! is refused and asked for again, the right one shows the figures and the keys denied most,
//! and a reload of the tab keeps it (session storage) without asking again.
//!
//! Chromium is required, not optional (scripts/test.sh installs Debian's `chromium`);
//! `CHROMIUM=/path` picks another binary.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, chromium, spawn_chromium};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "s3cret";

/// `login` admits 5 a minute per key.
const CONFIG: &str = "
admin_token: s3cret
policies:
  login: {rate: 5/min, description: sign-in attempts}
";

/// Headless Chromium with a DevTools port, killed when dropped (a failed test leaves none).
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    /// Opens `url` in a new profile under `dir`; answers the browser and its DevTools port.
    async fn open(dir: &Path, url: &str) -> (Browser, u16) {
        let profile = dir.join("profile");
        let child = spawn_chromium(
            Command::new(chromium())
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                ])
                .args(["--disable-dev-shm-usage", "--disable-background-networking"])
                .args(["--disable-component-update", "--disable-sync"])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("--remote-debugging-port=0")
                .arg(url)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let browser = Browser(child);
        // Chromium writes the port it took on the first line of this file once it listens.
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            if let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok()) {
                return (browser, port);
            }
            assert!(
                Instant::now() < deadline,
                "Chromium wrote no DevTools port in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One page's DevTools connection.
struct Page {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    last_id: u64,
}

impl Page {
    /// Connects to the page showing a URL that starts with `url`.
    async fn attach(port: u16, url: &str) -> Page {
        let list = format!("http://127.0.0.1:{port}/json/list");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ws_url = loop {
            let targets: Value = match reqwest::get(&list).await {
                Ok(resp) => resp.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let page = targets.as_array().into_iter().flatten().find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
            });
            if let Some(ws) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                break ws.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no page on {url} in 30 s: {targets}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .expect("DevTools connection");
        Page { ws, last_id: 0 }
    }

    /// Calls a DevTools method; answers its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.last_id += 1;
        let id = self.last_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send to DevTools");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} in 30 s"))
                .expect("DevTools connection open")
                .expect("DevTools frame");
            let Message::Text(text) = frame else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page; answers its value.
    async fn eval(&mut self, js: &str) -> Value {
        let params = json!({"expression": js, "returnByValue": true});
        let result = self.call("Runtime.evaluate", params).await;
        assert!(result["exceptionDetails"].is_null(), "{js} threw: {result}");
        result["result"]["value"].clone()
    }

    /// Waits (up to 15 s) until `js` is true; while it throws (a page still loading has no
    /// elements yet) it is not.
    async fn wait_for(&mut self, js: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let guarded =
            format!("(() => {{ try {{ return {js}; }} catch (e) {{ return false; }} }})()");
        while self.eval(&guarded).await != json!(true) {
            let page = self
                .eval("document.body ? document.body.innerText : '(loading)'")
                .await;
            assert!(Instant::now() < deadline, "never true: {js}\npage: {page}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `token` into the form and submits it, as a user would; the form must hide at
    /// once (checked in the same script run, so no answer to a read can come between).
    async fn submit_token(&mut self, token: &str) {
        let js = format!(
            "document.getElementById('token').value = {}; \
             document.getElementById('token-form').requestSubmit(); \
             document.getElementById('token-form').hidden",
            json!(token)
        );
        assert_eq!(self.eval(&js).await, json!(true), "hidden on submit");
    }
}

const FORM_SHOWN: &str = "!document.getElementById('token-form').hidden";
const REFUSED: &str = "document.body.dataset.status === 'error' && \
     document.getElementById('banner').textContent.includes('401 (unauthorized: ')";
const SHOWS_MALLORY: &str = "document.body.dataset.status === 'ok' && \
     document.getElementById('token-form').hidden && \
     [...document.querySelectorAll('#denied-body [data-k=key]')] \
        .some((td) => td.textContent === 'user:mallory')";

/// Denies `user:mallory` 3 times under `login` and waits until the server's stats (read
/// with the token) name the key.
async fn denials(s: &Running) {
    for _ in 0..8 {
        let body = json!({"key": "user:mallory", "policy": "login"});
        let (status, decision) = s.json("POST", "/v1/check", Some(&body)).await;
        assert_eq!(status, StatusCode::OK, "{decision}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, text) = s.call("GET", "/v1/stats", None, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        if text.contains("user:mallory") {
            return;
        }
        assert!(Instant::now() < deadline, "mallory never listed: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_the_admin_token_and_keeps_the_right_one_for_the_tab() {
    let s = Running::start(CONFIG, None).await;
    denials(&s).await;
    let (status, _) = s.call("GET", "/v1/stats", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the stats need the token");

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("{}/?interval=250ms", s.base);
    let (_browser, port) = Browser::open(dir.path(), &url).await;
    let mut page = Page::attach(port, &s.base).await;

    // No token yet: refused, and the form asks for it.
    page.wait_for(&format!("{FORM_SHOWN} && {REFUSED}")).await;
    let banner = page
        .eval("document.getElementById('banner').textContent")
        .await;
    assert!(
        banner
            .as_str()
            .is_some_and(|b| b.contains("Retrying every 250 ms.")),
        "{banner}"
    );

    // A wrong one: hidden on submit, then shown again once the server refuses it.
    page.submit_token("wrong").await;
    page.wait_for(&format!("{FORM_SHOWN} && {REFUSED}")).await;
    // A read already under way when it was typed may have been the one refused: two reads
    // later (250 ms apart), the wrong token has been sent and refused too.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let still = format!(
        "{FORM_SHOWN} && {REFUSED} && sessionStorage.getItem('tollgate-admin-token') === 'wrong'"
    );
    assert_eq!(
        page.eval(&still).await,
        json!(true),
        "the wrong token was not refused"
    );
    assert!(
        page.eval(SHOWS_MALLORY).await != json!(true),
        "a wrong token showed the keys"
    );

    // The right one: the figures and the keys denied most, no banner, no form.
    page.submit_token(TOKEN).await;
    page.wait_for(SHOWS_MALLORY).await;
    page.wait_for("document.getElementById('banner').hidden")
        .await;
    let login = page
        .eval("document.querySelector('#policies-body tr[data-policy=login] [data-k=denied_total]').textContent")
        .await;
    assert_eq!(login, json!("3"), "login's denials");

    // The tab keeps it: a reload reads the stats without asking again. (The mark tells the
    // reloaded document from the old one.)
    assert_eq!(page.eval("window.beforeReload = true").await, json!(true));
    page.call("Page.reload", json!({})).await;
    page.wait_for(&format!(
        "window.beforeReload === undefined && {SHOWS_MALLORY}"
    ))
    .await;
    for _ in 0..4 {
        // A few polls later (250 ms apart) the form has still not been asked for.
        assert_eq!(page.eval(FORM_SHOWN).await, json!(false));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
