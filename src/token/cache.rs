//! Token cache with refresh-ahead and single-flight minting (`docs/tokens.md`).
//!
//! Entries are keyed by (signing identity, token kind, host, port, region, DB user), and
//! dropped when their token expires. A cached token is
//! served only while at least `min_remaining` of its real validity is left. Once it is
//! within `refresh_ahead` of that floor, the first request to see it starts one background
//! refresh while it and others keep being served the current token. Concurrent misses for
//! one key wait on a per-key lock and mint once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::sign::{SignError, TokenKind, TokenParams};
use super::stored::{Pieces, StoredToken};
use crate::clock::SharedClock;
use crate::domain::{DbUser, Hostname, Region};
use crate::metrics::{label, names};
use crate::ratelimit::{Budget, Pacer, Throttled};

/// Asked before every signing: the target's budget of new tokens.
#[derive(Debug, Clone)]
pub struct MintGate {
    /// The process's limits.
    pub pacer: Arc<Pacer>,
    /// Target name (the budget's key).
    pub target: String,
    /// The target's kind, for metrics.
    pub kind: &'static str,
    /// Its budget.
    pub budget: Budget,
    /// How long a request may wait for a slot.
    pub max_wait: Duration,
}

impl MintGate {
    async fn take(&self, max_wait: Duration) -> Result<(), Throttled> {
        let result = self
            .pacer
            .take_target(&self.target, self.budget, max_wait)
            .await;
        match result {
            Ok(()) => metrics::counter!(names::TOKENS_MINTED.name, label::TARGET => self.target.clone(), label::KIND => self.kind).increment(1),
            Err(_) => metrics::counter!(names::THROTTLED.name, label::TARGET => self.target.clone(), label::LIMIT => "target").increment(1),
        }
        result
    }
}

/// What a cached token was minted for. Host, region and DB user share the
/// configuration's copies (`Arc<str>` inside), so a key costs little more than its pointers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Who signs: the access key id of the signing credentials.
    pub identity: Arc<str>,
    /// The token's kind: two kinds never share an entry.
    pub kind: TokenKind,
    /// The signed host as configured: the endpoint, or a cache's name.
    pub host: Hostname,
    /// Port.
    pub port: u16,
    /// Region.
    pub region: Region,
    /// DB user.
    pub db_user: DbUser,
}

impl CacheKey {
    fn params(&self) -> TokenParams<'_> {
        TokenParams {
            host: self.host.as_str(),
            port: self.port,
            region: self.region.as_str(),
            db_user: self.db_user.as_str(),
        }
    }
}

/// Drops an entry once its token has expired (each kind has its own lifetime).
struct UntilExpiry;

impl UntilExpiry {
    fn lifetime(value: &CachedToken) -> Option<Duration> {
        Some(
            value
                .expires_at
                .duration_since(value.signed_at)
                .unwrap_or_default(),
        )
    }
}

impl moka::Expiry<CacheKey, Arc<CachedToken>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedToken>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Self::lifetime(value)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedToken>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Self::lifetime(value)
    }
}

/// A minted token and what is known about it.
#[derive(Debug)]
pub struct CachedToken {
    /// The token itself, kept in shared pieces; secret.
    stored: StoredToken,
    /// SHA-256 of the token, for audit and logs.
    sha256: [u8; 32],
    /// Signing time (whole seconds, as in `X-Amz-Date`).
    pub signed_at: SystemTime,
    /// min(signed_at + the kind's lifetime, expiry of the signing credentials).
    pub expires_at: SystemTime,
    refreshing: AtomicBool,
    /// No refresh attempt before this (ms since the epoch): set when the budget refused one.
    refresh_not_before_ms: AtomicU64,
}

impl CachedToken {
    /// The token.
    pub fn token(&self) -> SecretString {
        self.stored.expose()
    }

    /// Hex SHA-256 of the token.
    pub fn token_sha256(&self) -> String {
        hex::encode(self.sha256)
    }

    fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at.duration_since(now).unwrap_or_default()
    }
}

/// Whether a request was served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served a token minted earlier (or minted concurrently for another request).
    Hit,
    /// This request minted the token.
    Miss,
}

impl CacheOutcome {
    /// `hit` or `miss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// Why no token could be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MintError {
    /// Signing failed.
    #[error("cannot sign the token")]
    Sign(#[source] Arc<SignError>),
    /// The cache neither kept nor produced a token (a bug).
    #[error("the token cache returned no entry")]
    NoEntry,
    /// The target's budget of new tokens is spent.
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// The signing credentials expire too soon for a token to be useful.
    #[error(
        "the signing credentials expire in {left_seconds} s, less than the {min_seconds} s a token must have left"
    )]
    CredentialsExpiring {
        /// Seconds the credentials have left.
        left_seconds: u64,
        /// `tokens.min_remaining_seconds`.
        min_seconds: u64,
    },
}

impl From<SignError> for MintError {
    fn from(e: SignError) -> Self {
        Self::Sign(Arc::new(e))
    }
}

/// The token cache.
#[derive(Debug, Clone)]
pub struct TokenCache {
    cache: Cache<CacheKey, Arc<CachedToken>>,
    clock: SharedClock,
    min_remaining: Duration,
    refresh_ahead: Duration,
    minted: Arc<AtomicU64>,
    pieces: Arc<Pieces>,
}

impl TokenCache {
    /// A cache holding at most `max_entries` tokens.
    pub fn new(
        clock: SharedClock,
        max_entries: u64,
        min_remaining: Duration,
        refresh_ahead: Duration,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_entries)
            .expire_after(UntilExpiry)
            .build();
        Self {
            cache,
            clock,
            min_remaining,
            refresh_ahead,
            minted: Arc::new(AtomicU64::new(0)),
            pieces: Arc::new(Pieces::default()),
        }
    }

    /// Tokens signed since start, including background refreshes.
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    /// Applies the cache's pending bookkeeping now, so counts are exact (benchmarks, tests).
    pub async fn sync(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Distinct token parts the cached tokens share (see `token::stored`).
    pub fn shared_pieces(&self) -> usize {
        self.pieces.len()
    }

    /// Number of cached tokens (approximate, as moka counts).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// A token for `key` signed with `credentials`, whose access key id must be
    /// `key.identity`: from the cache when one with enough validity is there, else minted
    /// once for all concurrent callers.
    pub async fn get(
        &self,
        key: CacheKey,
        credentials: &Credentials,
        gate: &MintGate,
    ) -> Result<(Arc<CachedToken>, CacheOutcome), MintError> {
        let now = self.clock.now();
        if let Some(t) = self.cache.get(&key).await
            && t.remaining(now) >= self.min_remaining
        {
            if t.remaining(now) < self.min_remaining + self.refresh_ahead {
                self.refresh_in_background(&key, &t, credentials, gate);
            }
            return Ok((t, CacheOutcome::Hit));
        }
        let result = self
            .cache
            .entry(key.clone())
            .and_try_compute_with(|existing| async {
                let now = self.clock.now();
                if existing.is_some_and(|e| e.value().remaining(now) >= self.min_remaining) {
                    return Ok(Op::Nop);
                }
                self.check_credentials(credentials)?;
                gate.take(gate.max_wait).await?;
                self.mint(&key, credentials).map(Op::Put)
            })
            .await?;
        match result {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) => {
                Ok((e.into_value(), CacheOutcome::Miss))
            }
            CompResult::Unchanged(e) => Ok((e.into_value(), CacheOutcome::Hit)),
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(MintError::NoEntry),
        }
    }

    /// A token for `key` that expires no later than `not_after` (an access request's end),
    /// minted for this caller alone and never cached: a token cannot be made to expire
    /// before its signature's `X-Amz-Expires`, so one that would outlive `not_after` is
    /// signed with a shorter `X-Amz-Expires` instead. Spends a slot of the target's budget.
    pub async fn mint_until(
        &self,
        key: &CacheKey,
        credentials: &Credentials,
        gate: &MintGate,
        not_after: SystemTime,
    ) -> Result<Arc<CachedToken>, MintError> {
        self.check_credentials(credentials)?;
        gate.take(gate.max_wait).await?;
        self.mint_capped(key, credentials, Some(not_after))
    }

    /// Refuses credentials that expire before a token would be useful (before a budget
    /// slot is spent on it).
    fn check_credentials(&self, credentials: &Credentials) -> Result<(), MintError> {
        let now = self.clock.now();
        if let Some(expiry) = credentials.expiry() {
            let left = expiry.duration_since(now).unwrap_or_default();
            if left < self.min_remaining {
                return Err(MintError::CredentialsExpiring {
                    left_seconds: left.as_secs(),
                    min_seconds: self.min_remaining.as_secs(),
                });
            }
        }
        Ok(())
    }

    fn mint(
        &self,
        key: &CacheKey,
        credentials: &Credentials,
    ) -> Result<Arc<CachedToken>, MintError> {
        self.mint_capped(key, credentials, None)
    }

    /// Mints a token for `key`, expiring no later than `cap` when given (then its
    /// `X-Amz-Expires` is shortened, and `min_remaining` does not apply: the cap is the
    /// end of the caller's access, not a reason to refuse).
    fn mint_capped(
        &self,
        key: &CacheKey,
        credentials: &Credentials,
        cap: Option<SystemTime>,
    ) -> Result<Arc<CachedToken>, MintError> {
        let now = self.clock.now();
        let whole_secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signed_at = UNIX_EPOCH + Duration::from_secs(whole_secs);
        let mut expires_at = signed_at + key.kind.lifetime();
        if let Some(cred_expiry) = credentials.expiry() {
            expires_at = expires_at.min(cred_expiry);
        }
        let left = expires_at.duration_since(now).unwrap_or_default();
        if left < self.min_remaining {
            return Err(MintError::CredentialsExpiring {
                left_seconds: left.as_secs(),
                min_seconds: self.min_remaining.as_secs(),
            });
        }
        let mut lifetime = key.kind.lifetime();
        if let Some(cap) = cap.filter(|c| *c < expires_at) {
            // Whole seconds, as X-Amz-Expires counts them.
            let secs = cap.duration_since(signed_at).unwrap_or_default().as_secs();
            if secs == 0 {
                return Err(SignError::Lifetime(0).into());
            }
            lifetime = Duration::from_secs(secs);
            expires_at = signed_at + lifetime;
        }
        let started = std::time::Instant::now();
        let token = key
            .kind
            .sign_for(key.params(), credentials, signed_at, lifetime)?;
        metrics::histogram!(names::SIGNING_DURATION.name).record(started.elapsed().as_secs_f64());
        self.minted.fetch_add(1, Ordering::Relaxed);
        let sha256 = Sha256::digest(token.expose_secret().as_bytes()).into();
        Ok(Arc::new(CachedToken {
            stored: StoredToken::new(&token, &self.pieces, credentials),
            sha256,
            signed_at,
            expires_at,
            refreshing: AtomicBool::new(false),
            refresh_not_before_ms: AtomicU64::new(0),
        }))
    }

    fn refresh_in_background(
        &self,
        key: &CacheKey,
        current: &Arc<CachedToken>,
        credentials: &Credentials,
        gate: &MintGate,
    ) {
        let now_ms = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        if now_ms < current.refresh_not_before_ms.load(Ordering::Acquire) {
            return;
        }
        if current.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let key = key.clone();
        let current = Arc::clone(current);
        let credentials = credentials.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            let result = this
                .cache
                .entry(key.clone())
                .and_try_compute_with(|existing| async {
                    match existing {
                        Some(e) if !Arc::ptr_eq(e.value(), &current) => Ok(Op::Nop),
                        _ => {
                            this.check_credentials(&credentials)?;
                            // Never waits: the current token is still good, and requests
                            // keep being served it while the budget is spent.
                            gate.take(Duration::ZERO).await?;
                            this.mint(&key, &credentials).map(Op::Put)
                        }
                    }
                })
                .await;
            match result {
                Ok(_) => {}
                Err(MintError::Throttled(t)) => {
                    // Try again once a slot is free, on the next request that sees it.
                    let retry = now_ms.saturating_add(
                        u64::try_from(t.retry_after.as_millis()).unwrap_or(u64::MAX),
                    );
                    current
                        .refresh_not_before_ms
                        .store(retry, Ordering::Release);
                    current.refreshing.store(false, Ordering::Release);
                    tracing::debug!(target_name = %gate.target, "refresh-ahead deferred: the target's budget is spent");
                }
                Err(e) => {
                    tracing::warn!(error = %crate::report::Report(&e), host = %key.host, db_user = %key.db_user, "refreshing a cached token ahead of expiry failed");
                    current.refreshing.store(false, Ordering::Release);
                }
            }
        });
    }
}
