//! `/docs`: a readable API reference, Swagger UI rendering the broker's own
//! `/openapi.json` in the browser. The renderer is vendored from npm
//! (`ui/vendor/swagger-ui/`, version and licence in its README) and embedded, so the page
//! needs nothing but this broker: it is served with the console's headers, including its
//! Content-Security-Policy, and like the console answers 404 while `ui.enabled` is false
//! (the gate is the console's, in `http/mod.rs`).

use axum::Router;
use axum::routing::get;

use super::ui::asset;
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("../../ui/docs/index.html");
const INIT_JS: &str = include_str!("../../ui/docs/init.js");
const BUNDLE_JS: &str = include_str!("../../ui/vendor/swagger-ui/swagger-ui-bundle.js");
const BUNDLE_CSS: &str = include_str!("../../ui/vendor/swagger-ui/swagger-ui.css");
const FAVICON_SVG: &str = include_str!("../../ui/favicon.svg");

/// The page and its assets: (path, content type, body).
const ASSETS: [(&str, &str, &str); 5] = [
    ("/docs", "text/html; charset=utf-8", INDEX_HTML),
    ("/docs/init.js", "text/javascript; charset=utf-8", INIT_JS),
    (
        "/docs/swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        BUNDLE_JS,
    ),
    (
        "/docs/swagger-ui.css",
        "text/css; charset=utf-8",
        BUNDLE_CSS,
    ),
    ("/docs/favicon.svg", "image/svg+xml", FAVICON_SVG),
];

/// The reference page's routes (merged into the console's, behind its gate).
pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for (path, content_type, body) in ASSETS {
        router = router.route(path, get(move || asset(content_type, body)));
    }
    router
}
