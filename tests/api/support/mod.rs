//! Test helpers: the broker's configuration built from typed parts (`config`), an
//! in-process broker on a random port (`app`), the real binary as a child process
//! (`binary`), each test's broker logs shown when it fails (`logs`), private PostgreSQL
//! and Redis servers for the run (`pg`, `redis`, stopped by a `watchdog`), the programs
//! taken from the machine (`tools`), and credential providers and identity providers the
//! tests control.

#![allow(dead_code)]

pub mod app;
pub mod binary;
pub mod config;
pub mod creds;
pub mod idp;
pub mod logs;
pub mod mariadb;
pub mod moto;
pub mod oidc;
pub mod oracle;
pub mod pg;
pub mod pg_tls;
pub mod pki;
pub mod proxy;
pub mod redis;
pub mod store;
pub mod tools;
pub mod watchdog;

/// An HTTP client for tests (installs rustls' aws-lc-rs provider first, as the broker does).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

/// What [`eventually`] waits for: `true`, or `Some(value)`.
pub trait Ready {
    type Value;
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Calls `check` every 50 ms until it is ready (`true` or `Some`), and returns its value;
/// fails the test after `timeout`. Waiting is always this, never a fixed sleep.
pub async fn eventually<F, Fut, R>(timeout: std::time::Duration, mut check: F) -> R::Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = R>,
    R: Ready,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await.ready() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready within {timeout:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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
