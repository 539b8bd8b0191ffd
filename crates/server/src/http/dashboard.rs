//! The web dashboard at `/`: one page whose assets are compiled into the binary (no CDN, no
//! build step: it works offline), reading `GET /v1/stats` every few seconds. The page and its
//! script are in `crates/server/assets/dashboard/`; `docs/dashboard.md` describes what it shows.
//!
//! The assets are answered with `Cache-Control: no-cache`, so a browser revalidates them and
//! picks up a new server's page at once instead of mixing an old script with a new report.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const STYLE_CSS: &str = include_str!("../../assets/dashboard/style.css");

/// One embedded asset with its content type.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// `GET /`: the dashboard page.
pub(crate) async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /dashboard/app.js`: the page's script.
pub(crate) async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /dashboard/style.css`: the page's style sheet.
pub(crate) async fn style_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
