//! Test helpers: an in-process broker on a random port, the real binary as a child
//! process, and credential providers the tests control.

#![allow(dead_code)]

pub mod app;
pub mod binary;
pub mod creds;
pub mod idp;
pub mod moto;
pub mod oidc;
pub mod oracle;
pub mod pg;

/// An HTTP client for tests (installs rustls' aws-lc-rs provider first, as the broker does).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

/// GETs `url` (with `bearer` as a bearer token, when given) and returns the JSON body.
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> serde_json::Value {
    let mut req = client.get(url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    req.send().await.unwrap().json().await.unwrap()
}
