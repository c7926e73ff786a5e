//! Signing keys of one JWT issuer: fetched from `jwks_uri`, `jwks_file` or OIDC discovery,
//! cached, refreshed periodically, and refetched when an unknown `kid` arrives, at most
//! once per `jwks_min_refetch_seconds` so junk `kid`s cannot turn the broker into a flood
//! against the IdP. A failed fetch keeps the cached keys in use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::clock::SharedClock;
use crate::config::IssuerConfig;

/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS URL.
    Uri(String),
    /// A JWKS file (air-gapped sites).
    File(PathBuf),
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery(String),
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    /// The key.
    pub key: DecodingKey,
    /// Key type from the JWK (`RSA`, `EC`, `OKP`).
    pub family: KeyFamily,
    /// The JWK's own `alg`, when it names one: the token must use exactly that.
    pub alg: Option<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish()
    }
}

/// Asymmetric key families; symmetric (`oct`) keys are never loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// RSA: RS*, PS*.
    Rsa,
    /// Elliptic curve: ES*.
    Ec,
    /// Octet key pair: EdDSA.
    Okp,
}

impl KeyFamily {
    /// The family an algorithm needs.
    pub fn of(alg: Algorithm) -> Option<Self> {
        use Algorithm as A;
        match alg {
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => Some(Self::Rsa),
            A::ES256 | A::ES384 => Some(Self::Ec),
            A::EdDSA => Some(Self::Okp),
            A::HS256 | A::HS384 | A::HS512 => None,
        }
    }
}

/// The keys of one fetch: by `kid`, plus keys that have none.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    without_kid: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document, skipping keys that are not asymmetric signing keys or that
    /// fail to parse (one odd key must not disable an issuer).
    pub fn parse(doc: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(doc).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let keys = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("JWKS has no \"keys\" array")?;
        let mut set = Self::default();
        for k in keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let family = match jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
                AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Okp,
                AlgorithmParameters::OctetKey(_) => continue,
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let key = Key { key, family, alg };
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, key);
                }
                None => set.without_kid.push(key),
            }
        }
        Ok(set)
    }

    /// Keys a token with this `kid` (or none) may have been signed with.
    pub fn candidates(&self, kid: Option<&str>) -> Vec<&Key> {
        match kid {
            Some(kid) => self.by_kid.get(kid).into_iter().collect(),
            None => self
                .without_kid
                .iter()
                .chain(self.by_kid.values())
                .collect(),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why keys could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<SystemTime>,
    last_success: Option<SystemTime>,
    last_error: Option<String>,
}

/// One issuer's configuration and cached keys.
#[derive(Debug)]
pub struct IssuerKeys {
    /// The issuer's configuration.
    pub config: IssuerConfig,
    source: KeySource,
    keys: ArcSwap<KeySet>,
    state: Mutex<FetchState>,
    fetching: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    clock: SharedClock,
}

impl IssuerKeys {
    /// No keys yet; call [`IssuerKeys::refresh`].
    pub fn new(config: IssuerConfig, http: reqwest::Client, clock: SharedClock) -> Self {
        let source = match (&config.jwks_uri, &config.jwks_file) {
            (Some(u), _) => KeySource::Uri(u.clone()),
            (None, Some(f)) => KeySource::File(f.clone()),
            (None, None) => KeySource::Discovery(config.issuer.clone()),
        };
        Self {
            config,
            source,
            keys: ArcSwap::from_pointee(KeySet::default()),
            state: Mutex::new(FetchState::default()),
            fetching: tokio::sync::Mutex::new(()),
            http,
            clock,
        }
    }

    /// The cached keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Whether keys were ever loaded, and the last fetch error.
    pub fn status(&self) -> (bool, Option<String>) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (s.last_success.is_some(), s.last_error.clone())
    }

    /// Fetches the keys now; on failure the cached keys stay in use.
    pub async fn refresh(&self) -> Result<usize, FetchError> {
        let _one_at_a_time = self.fetching.lock().await;
        self.fetch_and_store().await
    }

    /// Refetches because a token named an unknown `kid`, unless the last attempt was less
    /// than `jwks_min_refetch_seconds` ago (waiting first for a fetch already under way).
    /// Returns whether a fetch happened.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        let _one_at_a_time = self.fetching.lock().await;
        let now = self.clock.now();
        let recent = {
            let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.last_attempt.is_some_and(|t| {
                now.duration_since(t).unwrap_or_default() < self.config.jwks_min_refetch
            })
        };
        if recent {
            return false;
        }
        let _ = self.fetch_and_store().await;
        true
    }

    async fn fetch_and_store(&self) -> Result<usize, FetchError> {
        let now = self.clock.now();
        let result = self.fetch().await;
        metrics::counter!("rds_token_broker_jwks_refreshes_total", "issuer" => self.config.name.clone(), "outcome" => if result.is_ok() { "ok" } else { "error" }).increment(1);
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.last_attempt = Some(now);
        match result {
            Ok(set) => {
                let n = set.len();
                self.keys.store(Arc::new(set));
                s.last_success = Some(now);
                s.last_error = None;
                tracing::info!(issuer = %self.config.name, keys = n, "loaded the issuer's signing keys");
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.config.name, error = %e, "fetching the issuer's signing keys failed; cached keys stay in use");
                s.last_error = Some(e.0.clone());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let doc = match &self.source {
            KeySource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| FetchError(format!("cannot read {}: {e}", path.display())))?,
            KeySource::Uri(uri) => self.get(uri).await?,
            KeySource::Discovery(issuer) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let meta: serde_json::Value = serde_json::from_slice(&self.get(&url).await?)
                    .map_err(|_| FetchError(format!("{url}: discovery document is not JSON")))?;
                if meta.get("issuer").and_then(|i| i.as_str()) != Some(issuer.as_str()) {
                    return Err(FetchError(format!(
                        "{url}: discovery document names another issuer"
                    )));
                }
                let jwks_uri = meta
                    .get("jwks_uri")
                    .and_then(|u| u.as_str())
                    .ok_or_else(|| {
                        FetchError(format!("{url}: discovery document has no jwks_uri"))
                    })?;
                crate::config::fetch_allowed(jwks_uri, self.config.insecure_http)
                    .map_err(|why| FetchError(format!("{url}: the discovered jwks_uri {why}")))?;
                self.get(jwks_uri).await?
            }
        };
        KeySet::parse(&doc).map_err(FetchError)
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let res = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError(format!("{url}: {}", without_url(&e))))?;
        if !res.status().is_success() {
            return Err(FetchError(format!("{url}: HTTP {}", res.status().as_u16())));
        }
        read_capped(res, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| FetchError(format!("{url}: {e}")))
    }
}

/// The body of `res`, read chunk by chunk and abandoned as soon as it passes `max` bytes
/// (or announces more), so an oversized document is never held in memory.
pub async fn read_capped(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let too_large = || format!("document larger than {} KiB", max / 1024);
    if res
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| without_url(&e))? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

/// Follows at most `max` redirects, none from `https://` to plain `http://` (but to a
/// loopback host): a redirect must not undo the transport checked at configuration load.
pub fn no_downgrade(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|u| u.scheme() == "https");
        let to = attempt.url();
        let downgrade = to.scheme() != "https"
            && from_https
            && !to.host_str().is_some_and(crate::config::is_loopback_host);
        if attempt.previous().len() > max {
            attempt.error("too many redirects")
        } else if downgrade {
            attempt.error("redirected from https:// to http://")
        } else {
            attempt.follow()
        }
    })
}

/// The HTTP client for JWKS and discovery: rustls with the platform's roots, timeouts.
pub fn http_client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(no_downgrade(3))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
