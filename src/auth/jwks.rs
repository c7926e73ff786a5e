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

use super::outbound::{self, ClientBuildError, ReadError, Redirects, read_capped};
use crate::clock::SharedClock;
use crate::config::IssuerConfig;
use crate::metrics::{label, names};
use crate::report::Report;

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
    pub fn parse(doc: &[u8]) -> Result<Self, JwksError> {
        let value: serde_json::Value =
            serde_json::from_slice(doc).map_err(|e| JwksError::NotJson(Arc::new(e)))?;
        let keys = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or(JwksError::NoKeys)?;
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

/// Why a JWKS document is unusable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// It does not parse as JSON.
    #[error("JWKS is not JSON")]
    NotJson(#[source] Arc<serde_json::Error>),
    /// It has no `keys` array.
    #[error("JWKS has no \"keys\" array")]
    NoKeys,
}

/// Why keys could not be fetched. The messages name the document (its URL or file), never
/// a token; what went wrong underneath is the `source`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// `jwks_file` could not be read.
    #[error("cannot read {}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The request failed, or its answer could not be read whole.
    #[error("{url}")]
    Request {
        /// The document's URL.
        url: String,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The document's URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The discovery document is not JSON.
    #[error("{url}: discovery document is not JSON")]
    DiscoveryNotJson {
        /// The discovery URL.
        url: String,
    },
    /// The discovery document names another issuer.
    #[error("{url}: discovery document names another issuer")]
    OtherIssuer {
        /// The discovery URL.
        url: String,
    },
    /// The discovery document has no `jwks_uri`.
    #[error("{url}: discovery document has no jwks_uri")]
    NoJwksUri {
        /// The discovery URL.
        url: String,
    },
    /// The discovered `jwks_uri` may not be fetched (plain `http://`, not a URL).
    #[error("{url}: the discovered jwks_uri {why}")]
    JwksUriRefused {
        /// The discovery URL.
        url: String,
        /// Why (a fixed text).
        why: &'static str,
    },
    /// The document is not a usable JWKS.
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<SystemTime>,
    last_success: Option<SystemTime>,
    last_error: Option<FetchError>,
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
    pub fn status(&self) -> (bool, Option<FetchError>) {
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
        metrics::counter!(names::JWKS_REFRESHES.name, label::ISSUER => self.config.name.clone(), label::OUTCOME => if result.is_ok() { "ok" } else { "error" }).increment(1);
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
                tracing::warn!(issuer = %self.config.name, error = %Report(&e), "fetching the issuer's signing keys failed; cached keys stay in use");
                s.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let doc = match &self.source {
            KeySource::File(path) => tokio::fs::read(path).await.map_err(|e| FetchError::File {
                path: path.clone(),
                source: Arc::new(e),
            })?,
            KeySource::Uri(uri) => self.get(uri).await?,
            KeySource::Discovery(issuer) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&self.get(&url).await?)
                else {
                    return Err(FetchError::DiscoveryNotJson { url });
                };
                if meta.get("issuer").and_then(|i| i.as_str()) != Some(issuer.as_str()) {
                    return Err(FetchError::OtherIssuer { url });
                }
                let Some(jwks_uri) = meta.get("jwks_uri").and_then(|u| u.as_str()) else {
                    return Err(FetchError::NoJwksUri { url });
                };
                if let Err(why) = crate::config::fetch_allowed(jwks_uri, self.config.insecure_http)
                {
                    return Err(FetchError::JwksUriRefused { url, why });
                }
                self.get(jwks_uri).await?
            }
        };
        Ok(KeySet::parse(&doc)?)
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let failed = |source| FetchError::Request {
            url: url.to_owned(),
            source,
        };
        let res = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| failed(outbound::transport(e)))?;
        if !res.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: res.status().as_u16(),
            });
        }
        read_capped(res, MAX_DOCUMENT_BYTES).await.map_err(failed)
    }
}

/// The HTTP client for JWKS and discovery: at most 3 redirects, never to plain `http://`.
pub fn http_client() -> Result<reqwest::Client, ClientBuildError> {
    outbound::client(
        "issuers' signing keys",
        Duration::from_secs(5),
        Redirects::NoDowngrade(3),
    )
}
