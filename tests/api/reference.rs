//! The API reference page at `/docs`: Swagger UI, vendored in `ui/vendor/swagger-ui/` and
//! embedded, rendering `/openapi.json`. Its assets and headers over HTTP, the console's
//! switch turning it off, and the page in Debian's headless Chromium
//! (`tests/ui/docs.mjs`): every operation shown, no CSP violation, nothing fetched from
//! beyond the broker.

use std::path::PathBuf;

use crate::support::app::{TestApp, problem};
use crate::support::config::BrokerToml;

const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The page and every asset it loads, with their content types and files.
const ASSETS: [(&str, &str, &str); 5] = [
    ("/docs", "text/html; charset=utf-8", "ui/docs/index.html"),
    (
        "/docs/init.js",
        "text/javascript; charset=utf-8",
        "ui/docs/init.js",
    ),
    (
        "/docs/swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        "ui/vendor/swagger-ui/swagger-ui-bundle.js",
    ),
    (
        "/docs/swagger-ui.css",
        "text/css; charset=utf-8",
        "ui/vendor/swagger-ui/swagger-ui.css",
    ),
    ("/docs/favicon.svg", "image/svg+xml", "ui/favicon.svg"),
];

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_the_consoles_headers() {
    let app = TestApp::spawn().await;
    let console = app.get("/ui/").await;
    assert_eq!(console.status(), 200);
    let page = std::fs::read_to_string(repo().join("ui/docs/index.html")).unwrap();
    for (path, content_type, file) in ASSETS {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], content_type, "{path}");
        for h in [
            "content-security-policy",
            "x-content-type-options",
            "referrer-policy",
            "x-frame-options",
            "cross-origin-opener-policy",
        ] {
            assert_eq!(res.headers()[h], console.headers()[h], "{path}: {h}");
        }
        let body = res.bytes().await.unwrap();
        assert_eq!(body, std::fs::read(repo().join(file)).unwrap(), "{path}");
        // Every asset is one the page loads (and the page loads nothing else from /docs).
        if path != "/docs" {
            assert!(page.contains(&format!("\"{path}\"")), "{path} unused");
        }
    }
    assert_eq!(page.matches("\"/docs/").count(), ASSETS.len() - 1);
    // The strict policy, unrelaxed: no inline script or style, nothing from elsewhere.
    let csp = console.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self';") && csp.contains("style-src 'self';"));
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
    // The page renders the broker's own description.
    let init = std::fs::read_to_string(repo().join("ui/docs/init.js")).unwrap();
    assert!(init.contains("url: \"/openapi.json\""));
}

#[tokio::test]
async fn the_consoles_switch_turns_the_page_off_but_not_the_description() {
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().ui("enabled", false)).await;
    for (path, _, _) in ASSETS {
        problem(app.get(path).await, 404).await;
    }
    assert_eq!(app.get("/openapi.json").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_renders_every_operation_in_headless_chromium() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/test installs Debian's chromium package"
    );
    let app = TestApp::spawn().await;
    let shots = std::env::var("RTB_SCREENSHOTS").unwrap_or_default();
    let out = tokio::process::Command::new("node")
        .arg(repo().join("tests/ui/docs.mjs"))
        .env("BROKER_URL", &app.base)
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOT_DIR", shots)
        .output()
        .await
        .expect("node must be on PATH (scripts/test puts the virtualenv's Node.js there)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reference page test failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all reference checks passed"), "{stdout}");
}
