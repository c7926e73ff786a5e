//! The audit console's identity provider: its endpoints, from `[ui.oidc]` or from the
//! issuer's discovery document, and the one HTTP client the console's sign-in uses.
//!
//! `GET /ui/config` needs no credentials, so the discovery document is fetched at most
//! once per [`DISCOVERY_TTL`] per issuer URL (a failure is remembered for
//! [`FAILURE_TTL`]), one fetch at a time, with the broker's clock: callers cannot make the
//! broker fetch it on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::outbound::{self, ClientBuildError, Redirects, read_capped};
use crate::clock::SharedClock;
use crate::config::{UiOidc, fetch_allowed};

/// How long a fetched discovery document is used.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(600);
/// How long a failed fetch is answered from memory before the next try.
pub const FAILURE_TTL: Duration = Duration::from_secs(10);
/// Largest discovery document or token endpoint answer read.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Where the browser signs in and where the broker redeems the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The provider's authorization endpoint.
    pub authorization_endpoint: String,
    /// The provider's token endpoint.
    pub token_endpoint: String,
}

/// Why the endpoints are not known; each text is fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The document could not be fetched.
    #[error("the identity provider's discovery document could not be fetched")]
    Unreachable,
    /// It is not JSON, could not be read whole, or is larger than 1 MiB.
    #[error("the identity provider's discovery document is not JSON")]
    NotJson,
    /// It has no such endpoint.
    #[error("the identity provider's discovery document has no {0}")]
    Missing(&'static str),
    /// It names a plain `http://` endpoint the issuer does not allow.
    #[error("the identity provider's discovery document names a plain http:// {0}")]
    Insecure(&'static str),
}

/// The discovered endpoints, either may be absent.
#[derive(Debug, Clone)]
struct Discovered {
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

#[derive(Debug)]
struct Cached {
    fetched_at: SystemTime,
    result: Result<Discovered, DiscoveryError>,
}

/// The console's provider client and discovery cache (one per configuration generation,
/// kept across reloads).
#[derive(Debug)]
pub struct ConsoleIdp {
    http: reqwest::Client,
    clock: SharedClock,
    cache: Mutex<HashMap<String, Cached>>,
    fetching: tokio::sync::Mutex<()>,
}

impl ConsoleIdp {
    /// Builds the HTTP client once: timeouts, no redirects.
    pub fn new(clock: SharedClock) -> Result<Self, ClientBuildError> {
        let http = outbound::client(
            "the console's identity provider",
            Duration::from_secs(5),
            Redirects::None,
        )?;
        Ok(Self {
            http,
            clock,
            cache: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The client for the token endpoint.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The endpoints of `o`: configured, or from the (cached) discovery document.
    pub async fn endpoints(&self, o: &UiOidc) -> Result<Endpoints, DiscoveryError> {
        if let (Some(a), Some(t)) = (&o.authorization_endpoint, &o.token_endpoint) {
            return Ok(Endpoints {
                authorization_endpoint: a.clone(),
                token_endpoint: t.clone(),
            });
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            o.issuer_url.trim_end_matches('/')
        );
        let discovered = match self.cached(&url) {
            Some(hit) => hit,
            None => {
                let _one_at_a_time = self.fetching.lock().await;
                match self.cached(&url) {
                    Some(hit) => hit,
                    None => {
                        let result = self.fetch(&url).await;
                        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                        cache.insert(
                            url.clone(),
                            Cached {
                                fetched_at: self.clock.now(),
                                result: result.clone(),
                            },
                        );
                        result
                    }
                }
            }
        }?;
        let pick = |name: &'static str, configured: &Option<String>, found: &Option<String>| {
            if let Some(c) = configured {
                return Ok(c.clone());
            }
            let found = found.clone().ok_or(DiscoveryError::Missing(name))?;
            fetch_allowed(&found, o.insecure_http).map_err(|_| DiscoveryError::Insecure(name))?;
            Ok(found)
        };
        Ok(Endpoints {
            authorization_endpoint: pick(
                "authorization_endpoint",
                &o.authorization_endpoint,
                &discovered.authorization_endpoint,
            )?,
            token_endpoint: pick(
                "token_endpoint",
                &o.token_endpoint,
                &discovered.token_endpoint,
            )?,
        })
    }

    /// A cached answer for `url` that is still fresh.
    fn cached(&self, url: &str) -> Option<Result<Discovered, DiscoveryError>> {
        let now = self.clock.now();
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let hit = cache.get(url)?;
        let ttl = if hit.result.is_ok() {
            DISCOVERY_TTL
        } else {
            FAILURE_TTL
        };
        let age = now.duration_since(hit.fetched_at).unwrap_or_default();
        (age < ttl).then(|| hit.result.clone())
    }

    async fn fetch(&self, url: &str) -> Result<Discovered, DiscoveryError> {
        let res = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|_| DiscoveryError::Unreachable)?;
        let body = read_capped(res, MAX_ANSWER_BYTES)
            .await
            .map_err(|_| DiscoveryError::NotJson)?;
        let doc: Value = serde_json::from_slice(&body).map_err(|_| DiscoveryError::NotJson)?;
        let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Discovered {
            authorization_endpoint: field("authorization_endpoint"),
            token_endpoint: field("token_endpoint"),
        })
    }
}
