//! Tokens from the broker, one per (target, DB user), kept until `min_remaining` of their
//! validity is left and refreshed ahead in the background; one broker request at a time
//! per key (moka's `try_get_with` for misses, a per-entry flag for refreshes). Open
//! connections are never touched: a database checks the token at sign-in only.
//!
//! When the broker cannot be reached, a cached token that is still valid (beyond
//! [`LAST_RESORT`]) keeps being used; after that the error says the broker is down.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use moka::future::Cache;
use reqwest::StatusCode;
use rustls_pki_types::ServerName;
use secrecy::SecretString;

use super::signin::{Engine, SignIn, SignInError, SignInFuture, SignInSource};
use super::stats;
use crate::client::{self, BrokerClient};
use crate::clock::SharedClock;

/// A token with less than this left is never handed out, even when the broker is down.
pub const LAST_RESORT: Duration = Duration::from_secs(10);

/// Cache key: target and the DB user asked for (`None`: the grant's only user).
type Key = (Arc<str>, Option<Arc<str>>);

#[derive(Debug)]
struct Entry {
    sign_in: Arc<SignIn>,
    expires: SystemTime,
    refreshing: AtomicBool,
}

/// How long tokens are kept.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// A token with less than this left is replaced before use.
    pub min_remaining: Duration,
    /// A background refresh starts this long before `min_remaining` is reached.
    pub refresh_ahead: Duration,
}

/// The broker-backed [`SignInSource`].
#[derive(Debug, Clone)]
pub struct BrokerSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Arc<BrokerClient>,
    tls: Arc<rustls::ClientConfig>,
    cache: Cache<Key, Arc<Entry>>,
    fresh: Freshness,
    clock: SharedClock,
}

impl BrokerSource {
    /// A source asking `client`, verifying databases with `tls`.
    pub fn new(
        client: Arc<BrokerClient>,
        tls: Arc<rustls::ClientConfig>,
        fresh: Freshness,
        clock: SharedClock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                tls,
                cache: Cache::builder().max_capacity(10_000).build(),
                fresh,
                clock,
            }),
        }
    }

    async fn get(&self, target: &str, db_user: Option<&str>) -> Result<Arc<SignIn>, SignInError> {
        let key: Key = (Arc::from(target), db_user.map(Arc::from));
        let now = self.inner.clock.now();
        let fresh = self.inner.fresh;
        if let Some(entry) = self.inner.cache.get(&key).await {
            let left = remaining(entry.expires, now);
            if left > fresh.min_remaining {
                stats::token_served(target, "hit");
                if left <= fresh.min_remaining + fresh.refresh_ahead
                    && !entry.refreshing.swap(true, Ordering::AcqRel)
                {
                    self.refresh_in_background(key, entry.clone());
                }
                return Ok(entry.sign_in.clone());
            }
            // Too old: fetch now; the old one is a last resort if the broker is down.
            self.inner.cache.invalidate(&key).await;
            return match self.load(key).await {
                Ok(e) => Ok(e.sign_in.clone()),
                Err(err) if is_unreachable(&err) && left > LAST_RESORT => {
                    tracing::warn!(target_name = %target, error = %err, remaining_s = left.as_secs(), "the broker is unreachable; using the cached token while it lasts");
                    stats::token_served(target, "stale");
                    Ok(entry.sign_in.clone())
                }
                Err(err) => Err(err),
            };
        }
        self.load(key).await.map(|e| e.sign_in.clone())
    }

    /// Drops the cached sign-in for the key if it still is `used` (the database refused
    /// it: the password moved on to a newer token, say); a newer entry stays.
    async fn forget(&self, target: &str, db_user: Option<&str>, used: &Arc<SignIn>) {
        let key: Key = (Arc::from(target), db_user.map(Arc::from));
        if let Some(entry) = self.inner.cache.get(&key).await
            && Arc::ptr_eq(&entry.sign_in, used)
        {
            self.inner.cache.invalidate(&key).await;
            tracing::info!(target_name = %target, db_user = %used.db_user, "the database refused the cached token; the next sign-in fetches a fresh one");
        }
    }

    /// A miss: one broker request per key, shared by every waiter.
    async fn load(&self, key: Key) -> Result<Arc<Entry>, SignInError> {
        let this = self.clone();
        let k = key.clone();
        self.inner
            .cache
            .try_get_with(key, async move { this.fetch(&k).await.map(Arc::new) })
            .await
            .map_err(|e: Arc<SignInError>| (*e).clone())
    }

    fn refresh_in_background(&self, key: Key, old: Arc<Entry>) {
        let this = self.clone();
        tokio::spawn(async move {
            match this.fetch(&key).await {
                Ok(entry) => this.inner.cache.insert(key, Arc::new(entry)).await,
                Err(err) => {
                    tracing::warn!(target_name = %key.0, error = %err, "background token refresh failed; the current token stays in use");
                    old.refreshing.store(false, Ordering::Release);
                }
            }
        });
    }

    async fn fetch(&self, key: &Key) -> Result<Entry, SignInError> {
        let (target, db_user) = (key.0.as_ref(), key.1.as_deref());
        let started = Instant::now();
        let result = client::fetch_token_with_status(&self.inner.client, target, db_user).await;
        stats::token_fetch(target, result.is_ok(), started.elapsed());
        let issued = result.map_err(|(status, e)| classify(status, e, target, db_user))?;
        stats::token_served(target, "miss");
        let engine = Engine::parse(&issued.engine).ok_or_else(|| SignInError::WrongEngine {
            target: target.to_owned(),
            engine: crate::domain::text::cleaned(&issued.engine, 40),
            expected: "postgres, mysql or mariadb",
        })?;
        let server_name = ServerName::try_from(issued.host.clone())
            .map_err(|_| SignInError::BadHost(crate::domain::text::cleaned(&issued.host, 255)))?;
        let expires = crate::clock::parse_rfc3339(&issued.expires_at)
            .unwrap_or_else(|| self.inner.clock.now() + Duration::from_secs(300));
        Ok(Entry {
            sign_in: Arc::new(SignIn {
                target: target.to_owned(),
                engine,
                host: issued.host,
                port: issued.port,
                db_user: issued.db_user,
                token: SecretString::from(issued.token),
                tls: self.inner.tls.clone(),
                server_name,
            }),
            expires,
            refreshing: AtomicBool::new(false),
        })
    }
}

impl SignInSource for BrokerSource {
    fn sign_in<'a>(&'a self, target: &'a str, db_user: Option<&'a str>) -> SignInFuture<'a> {
        Box::pin(self.get(target, db_user))
    }

    fn refused<'a>(
        &'a self,
        target: &'a str,
        db_user: Option<&'a str>,
        used: &'a Arc<SignIn>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.forget(target, db_user, used))
    }
}

fn remaining(expires: SystemTime, now: SystemTime) -> Duration {
    expires.duration_since(now).unwrap_or(Duration::ZERO)
}

fn is_unreachable(e: &SignInError) -> bool {
    matches!(
        e,
        SignInError::BrokerUnreachable(_) | SignInError::Broker(_) | SignInError::Throttled(_)
    )
}

/// The broker's answer (its status, and the client's explanation) as a [`SignInError`].
fn classify(
    status: Option<StatusCode>,
    e: client::ClientError,
    target: &str,
    db_user: Option<&str>,
) -> SignInError {
    let message = e.to_string();
    match status {
        None => SignInError::BrokerUnreachable(message),
        Some(StatusCode::UNAUTHORIZED) => SignInError::Unauthenticated(message),
        Some(StatusCode::FORBIDDEN) => SignInError::Forbidden {
            target: target.to_owned(),
            db_user: db_user.unwrap_or("(default)").to_owned(),
            message,
        },
        Some(StatusCode::TOO_MANY_REQUESTS) => SignInError::Throttled(message),
        Some(_) => SignInError::Broker(message),
    }
}

/// TLS to databases: the system's roots, or `ca_file`'s certificates (the RDS bundle)
/// when given. Full verification either way.
pub fn database_tls(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--db-ca-file {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--db-ca-file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--db-ca-file {}: no certificate in it",
                    path.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("--db-ca-file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(
                    "no system CA certificates found: pass the database's CA bundle with --db-ca-file"
                        .into(),
                );
            }
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
