//! An in-process broker on 127.0.0.1:0 with a manual clock and test credentials.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use rds_token_broker::clock::ManualClock;
use rds_token_broker::config;
use rds_token_broker::startup::{Application, Dependencies};
use rds_token_broker::state::AppState;
use reqwest::Response;
use serde_json::Value;

use super::config::BrokerToml;
use super::creds::{Switchable, static_keys};

/// 2026-03-09T14:11:29Z, the vectors' signing time.
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_065_489)
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub creds: Arc<Switchable>,
    pub state: AppState,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// [`BrokerToml::unauthenticated`] with static credentials.
    pub async fn spawn() -> Self {
        Self::spawn_toml(BrokerToml::unauthenticated()).await
    }

    /// `config` with static credentials.
    pub async fn spawn_toml(config: BrokerToml) -> Self {
        Self::spawn_with(config, Switchable::with(static_keys())).await
    }

    /// `config` with credentials the test controls through [`TestApp::creds`].
    pub async fn spawn_with(config: BrokerToml, creds: Switchable) -> Self {
        let creds = Arc::new(creds);
        Self::spawn_with_provider(
            config,
            creds.clone(),
            SharedCredentialsProvider::new(ProviderRef(creds)),
        )
        .await
    }

    /// Like `spawn_with`, with any provider (`creds` is then only a handle for the test).
    pub async fn spawn_with_provider(
        config: BrokerToml,
        creds: Arc<Switchable>,
        provider: SharedCredentialsProvider,
    ) -> Self {
        super::logs::init();
        let text = config.to_string();
        let config = config::load_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let clock = Arc::new(ManualClock::new(t0()));
        let deps = Dependencies {
            clock: clock.clone(),
            credentials: provider,
            audit_store: None,
        };
        let app = Application::build(config, deps).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let state = app.state();
        let server = tokio::spawn(async move {
            app.run_until(std::future::pending()).await.unwrap();
        });
        Self {
            base,
            client: super::client(),
            clock,
            creds,
            state,
            server,
        }
    }

    /// `config` with credentials that never arrive (a hung provider).
    pub async fn spawn_hung(config: BrokerToml) -> Self {
        let provider = SharedCredentialsProvider::new(super::creds::Hanging);
        Self::spawn_with_provider(config, Arc::new(Switchable::none()), provider).await
    }

    pub async fn post_token(&self, body: Value) -> Response {
        self.client
            .post(format!("{}/v1/tokens", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Posts a token request that must succeed; returns the JSON body.
    pub async fn token(&self, body: Value) -> Value {
        let res = self.post_token(body).await;
        assert_eq!(res.status(), 200, "token request failed");
        res.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Tokens minted so far.
    pub fn minted(&self) -> u64 {
        self.state.broker.cache_stats().minted
    }
}

/// Lets the test keep a handle on the provider the app uses.
#[derive(Debug)]
struct ProviderRef(Arc<Switchable>);

impl aws_credential_types::provider::ProvideCredentials for ProviderRef {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}

/// Asserts a problem+json response and returns its body.
pub async fn problem(res: Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let ct = res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:rds-token-broker:problem:")
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}
