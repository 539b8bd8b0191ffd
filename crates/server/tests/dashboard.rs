//! The web dashboard end to end: a real server (`Server::bind` on a free port) with real
//! traffic (checks allowed and denied under a policy, queues with tasks), the page loaded in
//! headless Chromium, and what it shows asserted: the DOM after the script ran, and a
//! screenshot whose chart areas must hold the series' colours.
//!
//! Chromium is required, not optional: without it these tests fail (scripts/test.sh installs
//! Debian's `chromium`). `CHROMIUM=/path` picks another binary; `DASHBOARD_SCREENSHOT=path`
//! keeps a copy of the screenshot.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Running, chromium, spawn_chromium};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tollgate_queue::{HttpQueues, NewTask, QueueSpec, QueueStore, Reservation};

/// The series colours of app.js (and style.css), as RGB.
const ALLOWED: [u8; 3] = [0x1f, 0x9d, 0x55];
const DENIED: [u8; 3] = [0xd9, 0x3f, 0x3f];
const WAITING: [u8; 3] = [0x7b, 0x4f, 0xc9];

const WINDOW: &str = "1280,1000";

/// `login` admits 5 a minute per key: the traffic below is allowed 10 and denied 23 times.
const CONFIG: &str = "
policies:
  login: {rate: 5/min, description: sign-in attempts}
";

/// A check of `key` under `login`: whether it was allowed.
async fn check(s: &Running, key: &str) -> bool {
    let body = json!({"key": key, "policy": "login"});
    let (status, decision) = s.json("POST", "/v1/check", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    decision["allowed"].as_bool().expect("allowed is a bool")
}

/// The server's `GET /v1/stats` report.
async fn stats(s: &Running) -> Value {
    let (status, report) = s.json("GET", "/v1/stats", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    u64::try_from(since.expect("clock after 1970").as_millis()).expect("ms fit u64")
}

/// Checks under `login` (mallory: 5 allowed, 20 denied; alice: 5 allowed, 3 denied) and two
/// queues: `emails` (3 waiting, 1 in flight, 2 done) and `reports` (5 waiting at 1 a minute,
/// due in a minute: at risk). Waits until the server's samples hold all the decisions.
async fn traffic(s: &Running) {
    let mut allowed = 0;
    for (key, times) in [("user:mallory", 25), ("user:alice", 8)] {
        for _ in 0..times {
            allowed += u32::from(check(s, key).await);
        }
        // Another second, another bar.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(allowed, 10);

    let q = HttpQueues::new(&s.base).expect("valid base URL");
    let emails = QueueSpec::new("100/1s".parse().expect("rate"))
        .name("emails")
        .burst(10);
    q.create(emails).await.expect("create emails");
    for i in 0..6 {
        let task = NewTask::json(i.to_string()).expect("payload");
        q.push("emails", task).await.expect("push");
    }
    for done in [true, true, false] {
        let Reservation::Task(lease) = q.reserve("emails", "w1").await.expect("reserve") else {
            panic!("a burst of 10 has a token for each of 3 reserves");
        };
        if done {
            q.ack(&lease).await.expect("ack");
        }
    }
    let mut reports = QueueSpec::new("1/min".parse().expect("rate")).name("reports");
    reports.deadline_ms = Some(now_ms() + 60_000);
    q.create(reports).await.expect("create reports");
    for i in 0..5 {
        let task = NewTask::json(i.to_string()).expect("payload");
        q.push("reports", task).await.expect("push");
    }

    // The server samples once a second: wait (bounded) for a sample taken after all of it.
    let done_ms = now_ms();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = stats(s).await;
        let history = stats["history"].as_array().expect("history");
        let last_ms = history.last().and_then(|h| h["t_ms"].as_u64()).unwrap_or(0);
        if last_ms > done_ms + 100 {
            let totals = &stats["decisions"];
            assert_eq!(
                (&totals["allowed_total"], &totals["denied_total"]),
                (&json!(10), &json!(23))
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no sample after the traffic: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs headless Chromium on `url` with `args` (its own profile in `dir`, a 60 s limit);
/// answers what it wrote on stdout.
async fn run_chromium(dir: &Path, url: &str, args: &[String]) -> String {
    let (dir, url, args) = (dir.to_path_buf(), url.to_string(), args.to_vec());
    let run = move || {
        let out_path = dir.join("chromium.out");
        let err_path = dir.join("chromium.err");
        let mut child = spawn_chromium(
            Command::new(chromium())
                .args(["--headless", "--no-sandbox", "--disable-gpu"])
                .args(["--no-first-run", "--disable-dev-shm-usage"])
                .arg(format!("--user-data-dir={}", dir.join("profile").display()))
                .arg(format!("--window-size={WINDOW}"))
                .args(&args)
                .arg(&url)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out_path).expect("create chromium.out"))
                .stderr(std::fs::File::create(&err_path).expect("create chromium.err")),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for chromium") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        assert!(status.success(), "chromium failed ({status}): {stderr}");
        std::fs::read_to_string(&out_path).expect("read chromium.out")
    };
    tokio::task::spawn_blocking(run)
        .await
        .expect("chromium runner")
}

/// The DOM after the page's script ran for `budget_ms` of virtual time.
async fn dump_dom(dir: &Path, url: &str, budget_ms: u32) -> String {
    let budget = format!("--virtual-time-budget={budget_ms}");
    run_chromium(dir, url, &[budget, "--dump-dom".to_string()]).await
}

/// The element that opens with `marker` (a unique attribute), up to its closing `</tag>`.
fn element<'a>(dom: &'a str, marker: &str, tag: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page: {dom}"));
    let end = dom[start..]
        .find(&format!("</{tag}>"))
        .unwrap_or_else(|| panic!("{marker} is not closed"));
    &dom[start..start + end]
}

/// The text of the cell `data-k="field"` inside `row`.
fn cell<'a>(row: &'a str, field: &str) -> &'a str {
    let marker = format!("data-k=\"{field}\"");
    let at = row
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} cell in {row}"));
    let start = at + row[at..].find('>').expect("the tag closes") + 1;
    let end = row[start..].find('<').expect("the cell closes");
    &row[start..start + end]
}

/// A canvas's plot area in page pixels (`data-plot="x,y,w,h"`, written by app.js).
fn plot_area(dom: &str, canvas_id: &str) -> [u32; 4] {
    let canvas = element(dom, &format!("id=\"{canvas_id}\""), "canvas");
    let start = canvas.find("data-plot=\"").expect("data-plot") + "data-plot=\"".len();
    let end = canvas[start..].find('"').expect("data-plot closes");
    let numbers: Vec<u32> = canvas[start..start + end]
        .split(',')
        .map(|n| n.parse().expect("a whole number"))
        .collect();
    numbers.try_into().expect("four numbers")
}

/// A decoded screenshot: RGB pixels, row by row.
struct Image {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

fn decode_png(path: &Path) -> Image {
    let file = std::fs::File::open(path).expect("open the screenshot");
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let rgb = matches!(info.color_type, png::ColorType::Rgb | png::ColorType::Rgba);
    assert!(rgb, "a colour screenshot, not {:?}", info.color_type);
    let pixels = buf[..info.buffer_size()]
        .chunks(info.color_type.samples())
        .map(|px| [px[0], px[1], px[2]])
        .collect();
    let (width, height) = (info.width, info.height);
    Image {
        width,
        height,
        pixels,
    }
}

impl Image {
    /// Pixels in `area` (x, y, width, height) within `tolerance` of `color` on every channel.
    fn count(&self, [x0, y0, w, h]: [u32; 4], color: [u8; 3], tolerance: u8) -> usize {
        assert!(
            x0 + w <= self.width && y0 + h <= self.height,
            "off the image"
        );
        let near = |px: &[u8; 3]| {
            px.iter()
                .zip(color)
                .all(|(p, c)| p.abs_diff(c) <= tolerance)
        };
        let rows = (y0..y0 + h).flat_map(|y| (x0..x0 + w).map(move |x| y * self.width + x));
        rows.filter(|&i| near(&self.pixels[i as usize])).count()
    }
}

#[tokio::test]
async fn page_and_assets_are_served_embedded() {
    let s = Running::start(CONFIG, None).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", s.base)).send();

    let page = get("/").await.expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    let header = |resp: &reqwest::Response, name: &str| -> String {
        let value = resp.headers().get(name);
        value
            .map(|v| v.to_str().expect("ASCII").to_string())
            .unwrap_or_default()
    };
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let html = page.text().await.expect("the page");
    assert!(
        html.contains(r#"<script src="dashboard/app.js">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<link rel="stylesheet" href="dashboard/style.css">"#),
        "{html}"
    );

    for (path, content_type, needle) in [
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            "fetch('v1/stats'",
        ),
        (
            "/dashboard/style.css",
            "text/css; charset=utf-8",
            "--allowed: #1f9d55",
        ),
    ] {
        let resp = get(path).await.expect("GET an asset");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&resp, "content-type"), content_type, "{path}");
        assert_eq!(header(&resp, "cache-control"), "no-cache", "{path}");
        let body = resp.text().await.expect("the asset");
        assert!(body.contains(needle), "{needle} not in {path}");
        // Nothing is loaded from elsewhere: the page works offline.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path}"
        );
    }
    assert!(!html.contains("http://") && !html.contains("https://"));

    // A neighbour of the assets is still an API error, not the page.
    let missing = get("/dashboard/nope.js").await.expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chromium_shows_live_numbers_and_charts() {
    let s = Running::start(CONFIG, None).await;
    traffic(&s).await;
    let dir = tempfile::tempdir().expect("temp dir");

    let dom = dump_dom(dir.path(), &format!("{}/", s.base), 5000).await;
    assert!(dom.contains(r#"<body data-status="ok">"#), "{dom}");
    assert!(
        dom.contains(r#"id="banner" class="banner" role="alert" hidden"#),
        "{dom}"
    );

    let login = element(&dom, r#"<tr data-policy="login">"#, "tr");
    assert_eq!(cell(login, "allowed_total"), "10");
    assert_eq!(cell(login, "denied_total"), "23");
    // The heavy hitters, most denied first.
    let denied = element(&dom, r#"id="denied-body""#, "tbody");
    let mallory = denied.find("user:mallory").expect("mallory is listed");
    let alice = denied.find("user:alice").expect("alice is listed");
    assert!(mallory < alice, "{denied}");
    assert_eq!(cell(element(denied, "<tr", "tr"), "denied"), "20");

    let emails = element(&dom, r#"data-queue="emails""#, "tr");
    let counts = ["waiting", "in_flight", "delayed", "dead"].map(|f| cell(emails, f));
    assert_eq!(counts, ["3", "1", "0", "0"]);
    let reports = element(&dom, r#"data-queue="reports""#, "tr");
    assert_eq!(cell(reports, "waiting"), "5");
    assert!(reports.contains("at risk"), "{reports}");
    assert!(dom.contains("store: memory"), "{dom}");

    // The screenshot: the charts hold the series' colours where the data is drawn.
    let png_path = dir.path().join("dash.png");
    let shot = format!("--screenshot={}", png_path.display());
    run_chromium(
        dir.path(),
        &format!("{}/", s.base),
        &["--virtual-time-budget=5000".into(), shot],
    )
    .await;
    if let Some(keep) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        std::fs::copy(&png_path, keep).expect("copy the screenshot");
    }
    let image = decode_png(&png_path);
    assert_eq!((image.width, image.height), (1280, 1000));
    let decisions = plot_area(&dom, "chart-decisions");
    // 10 allowed and 23 denied, in bars snapped to whole pixels: exact colours.
    let green = image.count(decisions, ALLOWED, 0);
    let red = image.count(decisions, DENIED, 0);
    assert!(
        green >= 20 && red >= 20,
        "allowed {green} px, denied {red} px"
    );
    assert!(
        red > green,
        "more denied than allowed: {red} px vs {green} px"
    );
    let depth = image.count(plot_area(&dom, "chart-queue-depth"), WAITING, 24);
    assert!(depth >= 20, "queue depth line: {depth} px");
    // And nowhere else in the decisions chart is a waiting colour (the areas are right).
    assert_eq!(image.count(decisions, WAITING, 24), 0);
}

/// Serves what the real server at `upstream` serves, except that `/v1/stats` is answered
/// `ok_stats` times and then the connection is dropped (as by a server gone away). Answers
/// its base URL and how many times `/v1/stats` was asked for.
async fn flaky_proxy(upstream: String, ok_stats: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(answer(conn, upstream.clone(), counter.clone(), ok_stats));
        }
    });
    (base, asked)
}

async fn answer(mut conn: TcpStream, upstream: String, asked: Arc<AtomicUsize>, ok: usize) {
    let mut head = Vec::new();
    let mut buf = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    if path.starts_with("/v1/stats") && asked.fetch_add(1, Ordering::SeqCst) >= ok {
        return; // dropped without an answer
    }
    let resp = reqwest::get(format!("{upstream}{path}"))
        .await
        .expect("upstream");
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").cloned();
    let body = resp.bytes().await.expect("upstream body");
    let content_type = content_type.map(|v| v.to_str().unwrap_or("").to_string());
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        content_type.unwrap_or_default(),
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(&body).await;
}

#[tokio::test]
async fn banner_says_when_the_server_cannot_be_reached_and_keeps_retrying() {
    let s = Running::start(CONFIG, None).await;
    assert!(check(&s, "user:bob").await);
    let dir = tempfile::tempdir().expect("temp dir");

    // One good read, then the server is gone: the data stays, the banner says since when.
    let (base, asked) = flaky_proxy(s.base.clone(), 1).await;
    let dom = dump_dom(dir.path(), &format!("{base}/?interval=1"), 6000).await;
    assert!(dom.contains(r#"<body data-status="error">"#), "{dom}");
    let banner = element(&dom, r#"id="banner""#, "div");
    assert!(!banner.contains("hidden"), "{banner}");
    assert!(banner.contains("Cannot reach the server"), "{banner}");
    assert!(
        banner.contains("Last update") && banner.contains(" s ago"),
        "{banner}"
    );
    assert!(banner.contains("Retrying every 1 s"), "{banner}");
    assert!(
        dom.contains(r#"<tr data-policy="login">"#),
        "the last figures stay: {dom}"
    );
    let tries = asked.load(Ordering::SeqCst);
    assert!(
        tries >= 4,
        "it kept retrying: {tries} reads of /v1/stats in 6 s at 1 s"
    );

    // Never an answer: no data yet, and it says so.
    let (base, _) = flaky_proxy(s.base.clone(), 0).await;
    let dom = dump_dom(dir.path(), &format!("{base}/"), 3000).await;
    let banner = element(&dom, r#"id="banner""#, "div");
    assert!(
        banner.contains("Cannot reach the server") && banner.contains("No data yet"),
        "{banner}"
    );
    assert!(!dom.contains("data-policy="), "{dom}");

    // A server whose config sets the admin token: the page says so and asks for it.
    let guarded = Running::start(&format!("admin_token: s3cret\n{CONFIG}"), None).await;
    let dom = dump_dom(dir.path(), &format!("{}/", guarded.base), 3000).await;
    let banner = element(&dom, r#"id="banner""#, "div");
    assert!(
        banner.contains("Cannot read the server's stats"),
        "{banner}"
    );
    assert!(banner.contains("401 (unauthorized: "), "{banner}");
    let form = element(&dom, r#"id="token-form""#, "form");
    assert!(!form.contains("hidden"), "the token form shows: {form}");
}
