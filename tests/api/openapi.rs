//! `openapi/openapi.yaml` describes the routes the broker really serves.

use crate::support::app::TestApp;
use crate::support::config::{BrokerToml, Issuer};

/// (method, path) pairs documented in the OpenAPI file, read line by line: paths are the
/// two-space-indented keys under `paths:`, methods the four-space-indented keys below.
fn documented() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml"))
            .unwrap();
    let mut in_paths = false;
    let mut path = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = format!("/{}", p.trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && ["get", "post", "put", "delete", "patch"].contains(&m)
        {
            out.push((m.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_documented_operation_is_served_and_others_are_not() {
    let ops = documented();
    assert_eq!(ops.len(), 24, "{ops:?}");
    let app = TestApp::spawn().await;
    // The console's code redemption is served only with [ui.oidc] (404 without it).
    let with_oidc = TestApp::spawn_toml(
        BrokerToml::unauthenticated()
            .issuer(
                Issuer::jwks_uri("corp", "https://sso.example", "https://sso.example/jwks")
                    .audiences(["console"]),
            )
            .ui_oidc("issuer", "corp")
            .ui_oidc("client_id", "console"),
    )
    .await;
    for (method, path) in &ops {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let app = if path == "/ui/oidc/token" {
            &with_oidc
        } else {
            &app
        };
        let res = app
            .client
            .request(m, format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert!(
            ![404, 405].contains(&res.status().as_u16()),
            "{method} {path} is documented but not served"
        );
    }
    for (method, path) in [
        ("DELETE", "/v1/tokens"),
        ("POST", "/healthz"),
        ("PUT", "/readyz"),
    ] {
        assert!(!ops.contains(&(method.to_owned(), path.to_owned())));
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = app
            .client
            .request(m, format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
    }
}

#[tokio::test]
async fn get_openapi_json_serves_the_document() {
    let app = TestApp::spawn().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: serde_json::Value = res.json().await.unwrap();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(served, file);
    assert_eq!(served["openapi"], "3.1.0");
}
